package forward

import (
	"log/slog"
	"sync/atomic"
	"time"
)

const (
	// DialTimeout bounds one connection attempt to a subreceiver.
	DialTimeout = 5 * time.Second
	// BackoffInitial and BackoffMax bound the wait between two attempts, which
	// doubles after each failure.
	BackoffInitial = 100 * time.Millisecond
	BackoffMax     = 5 * time.Second
)

// State is a subreceiver's link state.
type State uint8

const (
	// StateConnecting: the first connection after start is being made; what
	// arrives meanwhile is queued, so a new exporter session loses nothing.
	StateConnecting State = iota
	StateUp
	// StateDown: the connection failed; RoundRobin routes around it, All queues
	// for it up to its high-water mark while it reconnects with backoff.
	StateDown
)

// link is the dial/backoff/up-down state machine of both kinds of TCP
// subreceiver: connecting, then up and down in turn, each change logged once
// and published in the metrics (subreceiver_up, reconnects). The state may be
// read from any goroutine; the backoff belongs to whoever dials.
type link struct {
	addr    string
	log     *slog.Logger
	m       *Metrics
	state   atomic.Uint32
	backoff time.Duration
}

func (l *link) init(addr string, log *slog.Logger, m *Metrics) {
	l.addr, l.log, l.m, l.backoff = addr, log, m, BackoffInitial
}

func (l *link) get() State { return State(l.state.Load()) }

// set records a state change and logs it once: "subreceiver up" (a reconnect
// when it was down), "subreceiver down" with err.
func (l *link) set(st State, err error) {
	old := State(l.state.Swap(uint32(st)))
	if old == st {
		return
	}
	switch st {
	case StateUp:
		l.m.Up.Store(1)
		if old == StateDown {
			l.m.Reconnects.Inc()
		}
		l.log.Info("subreceiver up", "subreceiver", l.addr)
	case StateDown:
		l.m.Up.Store(0)
		l.log.Warn("subreceiver down", "subreceiver", l.addr, "err", err)
	}
}

// quiet marks the link down without logging: the subreceiver is stopped, or
// a failed write is logged when its connection's close arrives.
func (l *link) quiet() {
	l.state.Store(uint32(StateDown))
	l.m.Up.Store(0)
}

// connected resets the backoff after a successful dial.
func (l *link) connected() { l.backoff = BackoffInitial }

// nextWait is how long to wait before the next dial; it doubles the next one.
func (l *link) nextWait() time.Duration {
	w := l.backoff
	l.backoff = min(2*l.backoff, BackoffMax)
	return w
}
