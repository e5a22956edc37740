package main

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// A capture whose export times are hours old, replayed several times over TCP
// to a collector as strict as IPFIXcol2 that restarts meanwhile: the templates
// sent again on the new connection carry the capture's time, not ours, and each
// loop goes on from where the previous one ended, so no session is refused.
func TestReplayOldCaptureToStrictCollector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.ipfix")
	gen := runGen(t, "-stream", "fullflow", "-records", "20000", "-out", path)
	testenv.AgeCapture(t, path, uint32(time.Now().Add(-6*time.Hour).Unix()), 20)

	c := testenv.StartCollector(t, "tcp")
	wait := start(t, "-replay", path, "-loops", "3", "-rate", "1500", "-to", "tcp://"+c.Addr())
	require.True(t, c.WaitRecords(5000, 20*time.Second), "records before the collector restarts")
	c.Stop()
	time.Sleep(150 * time.Millisecond) // some writes fail while it is down
	c.Restart()
	res := wait()
	require.Zero(t, res.code, res.stderr)
	assert.GreaterOrEqual(t, res.sum.Reconnects, int64(1))
	assert.Equal(t, 3*gen.sum.Records, res.sum.Records)
	assert.Empty(t, c.Refusals(), "the collector refused sessions")
	assert.Zero(t, c.Stats().Undecoded)
	assert.GreaterOrEqual(t, c.Stats().Sessions, 2)
}

// When the collector closes the connection before the replay is over and
// nobody listens any more, ipfix-gen says so and exits non-zero: it must not
// report success for records that never arrived.
func TestReplayConnectionBrokenExitsNonZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.ipfix")
	runGen(t, "-stream", "mail", "-records", "3000", "-out", path)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		conn, err := ln.Accept()
		_ = ln.Close() // nobody listens any more
		if err != nil {
			return
		}
		// A collector that refuses the stream after its first bytes.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.ReadFull(conn, make([]byte, 1000))
		_ = conn.Close()
	}()
	res := start(t, "-replay", path, "-duration", "5s", "-to", "tcp://"+addr)()
	<-accepted
	assert.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
	assert.Contains(t, res.stderr, "before everything was sent")
}
