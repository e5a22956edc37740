package console

import (
	"context"
	"sync"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
)

// Series names, per receiver ("in_*", "drops") and per subreceiver
// ("sent_*", "queue", "drops").
const (
	seriesInMessages = "in_messages" // messages/s received
	seriesInRecords  = "in_records"  // records/s received
	seriesInBytes    = "in_bytes"    // bytes/s received
	seriesDrops      = "drops"       // messages/s dropped (receiver: every reason of the receiver and its outputs)
	seriesSentMsgs   = "sent_messages"
	seriesSentBytes  = "sent_bytes"
	seriesQueue      = "queue"  // bytes waiting (a gauge)
	seriesErrors     = "errors" // dump writer errors/s
)

// point is one sample of a series.
type point struct {
	T time.Time
	V float64
}

// ring is a bounded series: the last cap(points) samples.
type ring struct {
	points []point
	next   int
}

func (r *ring) add(p point) {
	if len(r.points) < cap(r.points) {
		r.points = append(r.points, p)
		return
	}
	r.points[r.next] = p
	r.next = (r.next + 1) % len(r.points)
}

// all returns the samples, oldest first (a copy).
func (r *ring) all() []point {
	out := make([]point, 0, len(r.points))
	out = append(out, r.points[r.next:]...)
	return append(out, r.points[:r.next]...)
}

func (r *ring) last() (point, bool) {
	if len(r.points) == 0 {
		return point{}, false
	}
	i := r.next - 1
	if i < 0 {
		i = len(r.points) - 1
	}
	return r.points[i], true
}

// seriesKey names a series: "fullflow/0|in_messages" or
// "fullflow/0|tcp 10.0.0.2:9920|queue".
func seriesKey(receiver, output, name string) string {
	if output == "" {
		return receiver + "|" + name
	}
	return receiver + "|" + output + "|" + name
}

// samples keeps every series of the last Window. Safe for concurrent use.
type samples struct {
	every  time.Duration
	size   int
	mu     sync.Mutex
	series map[string]*ring
	prev   *balancer.Status
	latest *balancer.Status
}

func newSamples(every, window time.Duration) *samples {
	return &samples{every: every, size: max(2, int(window/every)), series: make(map[string]*ring)}
}

// take samples st: rates against the previous sample, gauges as they are.
func (s *samples) take(st balancer.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.prev
	s.prev, s.latest = &st, &st
	if prev == nil {
		return
	}
	secs := st.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		return
	}
	before := map[string]*balancer.ReceiverStatus{}
	for i := range prev.Receivers {
		before[prev.Receivers[i].Name] = &prev.Receivers[i]
	}
	rate := func(now, then uint64) float64 {
		if now < then { // a series restarted (receiver rebuilt)
			return float64(now) / secs
		}
		return float64(now-then) / secs
	}
	put := func(key string, v float64) {
		r := s.series[key]
		if r == nil {
			r = &ring{points: make([]point, 0, s.size)}
			s.series[key] = r
		}
		r.add(point{T: st.Time, V: v})
	}
	for i := range st.Receivers {
		rs := &st.Receivers[i]
		p := before[rs.Name]
		if p == nil {
			p = &balancer.ReceiverStatus{}
		}
		put(seriesKey(rs.Name, "", seriesInMessages), rate(rs.ReceivedMessages, p.ReceivedMessages))
		put(seriesKey(rs.Name, "", seriesInRecords), rate(rs.ReceivedRecords, p.ReceivedRecords))
		put(seriesKey(rs.Name, "", seriesInBytes), rate(rs.ReceivedBytes, p.ReceivedBytes))
		drops := rate(sum(rs.Dropped), sum(p.Dropped))
		prevOut := map[string]*balancer.OutputStatus{}
		for j := range p.Subreceivers {
			prevOut[p.Subreceivers[j].Key] = &p.Subreceivers[j]
		}
		for j := range rs.Subreceivers {
			o := &rs.Subreceivers[j]
			po := prevOut[o.Key]
			if po == nil {
				po = &balancer.OutputStatus{}
			}
			d := rate(sum(o.Dropped), sum(po.Dropped))
			drops += d
			put(seriesKey(rs.Name, o.Key, seriesSentMsgs), rate(o.SentMessages, po.SentMessages))
			put(seriesKey(rs.Name, o.Key, seriesSentBytes), rate(o.SentBytes, po.SentBytes))
			put(seriesKey(rs.Name, o.Key, seriesQueue), float64(o.QueueBytes))
			put(seriesKey(rs.Name, o.Key, seriesDrops), d)
		}
		if rs.Dump != nil {
			put(seriesKey(rs.Name, "dump", seriesQueue), float64(rs.Dump.QueueBytes))
			var was uint64
			if p.Dump != nil {
				was = sum(p.Dump.Errors)
			}
			put(seriesKey(rs.Name, "dump", seriesErrors), rate(sum(rs.Dump.Errors), was))
		}
		put(seriesKey(rs.Name, "", seriesDrops), drops)
	}
}

// status returns the latest sample (nil before the first).
func (s *samples) status() *balancer.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// get returns a copy of a series (nil when unknown).
func (s *samples) get(key string) []point {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.series[key]; r != nil {
		return r.all()
	}
	return nil
}

// last returns the latest value of a series.
func (s *samples) last(key string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.series[key]; r != nil {
		p, ok := r.last()
		return p.V, ok
	}
	return 0, false
}

// run samples src every s.every until ctx ends.
func (s *samples) run(ctx context.Context, src Source) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	s.take(src.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.take(src.Status())
		}
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
