package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
)

// TestSamplesRates: rates come from two snapshots' counters, drops add the
// receiver's and its subreceivers', queues are gauges, and a counter that
// went back (a receiver rebuilt) counts from zero.
func TestSamplesRates(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	snap := func(at time.Duration, msgs, sent, subDrops, queue uint64) balancer.Status {
		return balancer.Status{Time: t0.Add(at), Receivers: []balancer.ReceiverStatus{{
			Name: "fullflow/0", ReceivedMessages: msgs, ReceivedRecords: 10 * msgs, ReceivedBytes: 1000 * msgs,
			Dropped: map[string]uint64{"no_subreceiver": msgs / 100},
			Subreceivers: []balancer.OutputStatus{{Key: "tcp 10.0.0.1:1", SentMessages: sent, QueueBytes: int64(queue),
				Dropped: map[string]uint64{"queue_full": subDrops}}},
		}}}
	}
	s := newSamples(5*time.Second, time.Hour)
	s.take(snap(0, 1000, 900, 0, 0))
	assert.Nil(t, s.get(seriesKey("fullflow/0", "", seriesInMessages)), "one snapshot makes no rate")
	s.take(snap(5*time.Second, 6000, 5400, 50, 4096))
	v := func(out, name string) float64 {
		t.Helper()
		x, ok := s.last(seriesKey("fullflow/0", out, name))
		require.True(t, ok, "%s %s", out, name)
		return x
	}
	assert.Equal(t, 1000.0, v("", seriesInMessages))
	assert.Equal(t, 10000.0, v("", seriesInRecords))
	assert.Equal(t, 1e6, v("", seriesInBytes))
	assert.Equal(t, 900.0, v("tcp 10.0.0.1:1", seriesSentMsgs))
	assert.Equal(t, 10.0, v("tcp 10.0.0.1:1", seriesDrops))
	assert.Equal(t, 4096.0, v("tcp 10.0.0.1:1", seriesQueue))
	assert.Equal(t, 20.0, v("", seriesDrops), "receiver drops (50/5s) plus its subreceiver's (50/5s)")

	s.take(snap(10*time.Second, 500, 400, 0, 0)) // rebuilt: counters restarted
	assert.Equal(t, 100.0, v("", seriesInMessages))
	assert.Len(t, s.get(seriesKey("fullflow/0", "", seriesInMessages)), 2)
	assert.Equal(t, t0.Add(10*time.Second), s.status().Time)
}
