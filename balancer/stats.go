package balancer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// startStats logs one line per StatsEvery with what moved since the last line.
func (r *Receiver) startStats() (stop func()) {
	if r.opts.StatsEvery <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(r.opts.StatsEvery)
		defer t.Stop()
		var lastMsgs, lastBytes, lastDrops uint64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			msgs, bytes := r.m.receivedMessages.Get(), r.m.receivedBytes.Get()
			drops := r.droppedTotal()
			secs := r.opts.StatsEvery.Seconds()
			r.log.Info("stats",
				"messages_per_second", int(float64(msgs-lastMsgs)/secs),
				"mbit_per_second", int(float64(bytes-lastBytes)*8/secs/1e6),
				"dropped", drops-lastDrops,
				"sessions", r.m.sessions.Load(),
				"templates", r.m.templates.Load(),
			)
			lastMsgs, lastBytes, lastDrops = msgs, bytes, drops
		}
	}()
	return func() { close(done) }
}

func (r *Receiver) droppedTotal() uint64 {
	var n uint64
	for _, c := range r.m.dropped {
		n += c.Get()
	}
	r.outMu.Lock()
	defer r.outMu.Unlock()
	for _, m := range r.outMetrics {
		for _, c := range m.Dropped {
			n += c.Get()
		}
	}
	return n
}

// gnetLogger routes gnet's own log lines to slog.
type gnetLogger struct{ l *slog.Logger }

var _ logging.Logger = gnetLogger{}

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
