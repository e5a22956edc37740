package balancer_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// TestReceiverStatus reads the status of a forwarding receiver while an
// exporter sends to it, from several goroutines (run under -race): the
// session, the counters and both subreceivers with their queue mark.
func TestReceiverStatus(t *testing.T) {
	up := testenv.StartCollector(t, "tcp")
	down := testenv.StartCollector(t, "tcp")
	downAddr := down.Addr()
	down.Stop()
	cfg := receiverConfig(config.RoundRobin, up)
	cfg.Subreceivers = append(cfg.Subreceivers, config.Subreceiver{Addr: downAddr, Proto: config.TCP})
	r := startReceiver(t, cfg)

	before := r.Status()
	assert.True(t, before.Live)
	assert.Empty(t, before.Sessions)
	// RoundRobin may pick a subreceiver still making its first connection: wait
	// until the dead one's has failed, so every record goes to the live one.
	require.Eventually(t, func() bool {
		for _, o := range r.Status().Subreceivers {
			if o.Addr == downAddr {
				return !o.Available
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the dead subreceiver's first connection never failed")

	tr := makeTraffic(t, 2000, 7, 1400, 0)
	conn, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = conn.Write(tr.stream())
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_ = r.Status()
			}
		}()
	}
	require.True(t, up.WaitRecords(2000, 20*time.Second), "collector got %d records", len(up.Records()))
	wg.Wait()

	st := r.Status()
	assert.Equal(t, "fullflow/0", st.Name)
	assert.True(t, st.Live)
	require.Len(t, st.Sessions, 1)
	assert.Equal(t, conn.LocalAddr().String(), st.Sessions[0].Remote)
	assert.WithinDuration(t, start, st.Sessions[0].Since, 5*time.Second)
	assert.Equal(t, uint64(len(tr.messages)), st.ReceivedMessages)
	assert.Equal(t, uint64(2000), st.ReceivedRecords)
	assert.Zero(t, st.ExporterLostRecords)
	require.Len(t, st.Subreceivers, 2)
	byAddr := map[string]balancer.OutputStatus{}
	for _, o := range st.Subreceivers {
		byAddr[o.Addr] = o
		assert.Equal(t, int64(cfg.QueueBytes), o.QueueMark)
		assert.Equal(t, "tcp", o.Proto)
	}
	assert.True(t, byAddr[up.Addr()].Up)
	assert.Equal(t, uint64(2000), byAddr[up.Addr()].SentRecords)
	assert.False(t, byAddr[downAddr].Up)
	assert.Contains(t, byAddr[downAddr].Dropped, "subreceiver_down")
	assert.Nil(t, st.Dump)
}

// TestRecordingStatus: a Recording receiver reports its dump writer.
func TestRecordingStatus(t *testing.T) {
	cfg := receiverConfig(config.Recording)
	cfg.Recording = config.Recorder{Dir: t.TempDir(), RotateEvery: time.Minute, QueueBytes: 1 << 20}
	r := startReceiver(t, cfg)
	tr := makeTraffic(t, 500, 1, 1400, 0)
	sendTCP(t, r.Addr(), tr.stream(), 4096)
	testenv.WaitFor(t, 20*time.Second, "dump writes", func() bool {
		st := r.Status()
		return st.Dump != nil && st.Dump.WrittenRecords == 500
	})
	st := r.Status()
	require.NotNil(t, st.Dump)
	assert.True(t, st.Dump.Up)
	assert.Equal(t, int64(1<<20), st.Dump.QueueMark)
	assert.Contains(t, st.Dump.Errors, "write")
	assert.Empty(t, st.Subreceivers)
}
