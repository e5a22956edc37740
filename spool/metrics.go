package spool

import (
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Drop reasons (label reason of ipfix_balancer_spool_dropped_messages_total).
var dropReasons = []string{"buffer_full", "quota", "quota_oldest", "disk_floor", "disk_full", "write_error", "malformed", "locked"}

type spoolMetrics struct {
	spooled, replayed, duplicates, torn *metrics.Counter
	possibleDuplicates                  *metrics.Counter
	dropped                             map[string]*metrics.Counter
	bytes, segments, age, replaying     *metrics.Gauge
}

func newMetrics(set *metrics.Set, labels string) *spoolMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	m := &spoolMetrics{
		spooled:            set.GetOrCreateCounter(`ipfix_balancer_spool_spooled_messages_total{` + labels + `}`),
		replayed:           set.GetOrCreateCounter(`ipfix_balancer_spool_replayed_messages_total{` + labels + `}`),
		duplicates:         set.GetOrCreateCounter(`ipfix_balancer_spool_duplicate_messages_total{` + labels + `}`),
		possibleDuplicates: set.GetOrCreateCounter(`ipfix_balancer_spool_possible_duplicate_messages_total{` + labels + `}`),
		torn:               set.GetOrCreateCounter(`ipfix_balancer_spool_torn_segments_total{` + labels + `}`),
		dropped:            make(map[string]*metrics.Counter),
		bytes:              set.GetOrCreateGauge(`ipfix_balancer_spool_bytes{`+labels+`}`, nil),
		segments:           set.GetOrCreateGauge(`ipfix_balancer_spool_segments{`+labels+`}`, nil),
		age:                set.GetOrCreateGauge(`ipfix_balancer_spool_oldest_message_age_seconds{`+labels+`}`, nil),
		replaying:          set.GetOrCreateGauge(`ipfix_balancer_spool_replaying{`+labels+`}`, nil),
	}
	sep := ","
	if labels == "" {
		sep = ""
	}
	for _, r := range dropReasons {
		m.dropped[r] = set.GetOrCreateCounter(`ipfix_balancer_spool_dropped_messages_total{` + labels + sep + `reason="` + r + `"}`)
	}
	return m
}

// gauges updates the gauges from the segments.
func (s *Spool) gauges() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.bytes.Set(float64(s.bytes))
	s.m.segments.Set(float64(len(s.segs)))
	age := 0.0
	if len(s.segs) > 0 && !s.emptyLocked() {
		age = time.Since(s.segs[0].Opened).Seconds()
	}
	s.m.age.Set(age)
	r := 0.0
	if s.replaying.Load() || !s.emptyLocked() {
		r = 1
	}
	s.m.replaying.Set(r)
}
