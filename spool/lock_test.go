package spool

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockOneWriter: a second spool on the directory of a running one (a
// hand-over successor started before its predecessor closed) writes nothing,
// replays nothing and keeps its appends in memory until the first closes;
// then it replays the first's messages, followed by its own, none twice.
func TestLockOneWriter(t *testing.T) {
	dir := t.TempDir()
	st := makeStream(2000, 300, 10)
	half := 1000
	a, err := New(Config{Dir: dir, SegmentBytes: 64 << 10, BufferBytes: 16 << 20}, labels, nil, nil)
	require.NoError(t, err)
	a.Run()
	appendAll(t, a, st.msgs[:half])
	require.Eventually(t, func() bool { return a.written() == int64(half) }, 10*time.Second, 5*time.Millisecond)

	set := metrics.NewSet()
	b, err := New(Config{Dir: dir, SegmentBytes: 64 << 10, BufferBytes: 16 << 20}, labels, set, nil)
	require.NoError(t, err)
	b.Run()
	t.Cleanup(func() { _ = b.Close() })
	appendAll(t, b, st.msgs[half:])
	// b waits for a's lock: no segment of its own, nothing to replay.
	wait := time.After(300 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-wait:
			done = true
		case <-time.After(5 * time.Millisecond):
			assert.False(t, b.isLoaded(), "second spool took the directory of a running one")
			_, ok := b.Next()
			assert.False(t, ok, "second spool replays while the first runs")
			assert.Equal(t, int64(0), b.written())
		}
	}
	assert.False(t, b.Drained())

	require.NoError(t, a.Close())
	got := drain(t, b, len(st.msgs), 50, time.Minute)
	checkSame(t, st, 0, got)
	require.Eventually(t, b.Drained, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 0, counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="locked"}`))
}
