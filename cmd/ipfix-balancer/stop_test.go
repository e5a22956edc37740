package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// session encodes one exporter session: the template and ten records numbered
// from first.
func session(t *testing.T, first uint64) []byte {
	t.Helper()
	var out []byte
	enc := ipfix.NewEncoder(1, 1400)
	enc.SetOutput(func(m []byte) { out = append(out, m...) })
	enc.AddTemplate(ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 8, Length: 4}}))
	rec := make([]byte, 0, 12)
	for id := first; id < first+10; id++ {
		rec = ipfix.AppendUint(rec[:0], id, 8)
		rec = ipfix.AppendUint(rec, 0x0a000001, 4)
		require.NoError(t, enc.AppendRecord(256, rec))
	}
	enc.Flush()
	return out
}

// SIGTERM while a DPI reconnects again and again: the daemon exits 0 with no
// panic and says it is stopping and stopped; each session the DPI saw end
// cleanly (every byte read) has all its records at a collector, the others were
// refused before they could send.
func TestStopWhileExporterReconnects(t *testing.T) {
	dir := t.TempDir()
	a := testenv.StartCollector(t, "tcp", testenv.CountByID())
	b := testenv.StartCollector(t, "tcp", testenv.CountByID())
	port := freePort(t)
	config := filepath.Join(dir, "balancer.toml")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`
[metrics]
listen = "127.0.0.1:%d"
[balancer]
control_socket = %q
shutdown_timeout = "2s"

[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:%d"
mode = "RoundRobin"
subreceivers = [%q, %q]
`, freePort(t), filepath.Join(dir, "control.sock"), port, a.Addr(), b.Addr())), 0o600))

	var out lockedBuffer
	cmd := exec.Command(binary, "-config", config)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains([]byte(out.String()), []byte("balancer running")) {
		require.True(t, time.Now().Before(deadline), "daemon did not start:\n%s", out.String())
		time.Sleep(10 * time.Millisecond)
	}

	sessions := make([][]byte, 300)
	for k := range sessions {
		sessions[k] = session(t, uint64(1+k*10))
	}
	var mu sync.Mutex
	var acked []uint64 // first record of each session that ended cleanly
	established, refused := 0, 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k, s := range sessions {
			select {
			case <-stop:
				return
			default:
			}
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				continue
			}
			mu.Lock()
			established++
			mu.Unlock()
			first := uint64(1 + k*10)
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			_, err = conn.Write(s)
			if err == nil {
				err = conn.(*net.TCPConn).CloseWrite()
			}
			if err == nil {
				_, err = io.Copy(io.Discard, conn) // nil at a clean end, an error at a reset
			}
			_ = conn.Close()
			if err == nil {
				mu.Lock()
				acked = append(acked, first)
				mu.Unlock()
			}
		}
	}()
	deadline = time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := established
		mu.Unlock()
		if n >= 5 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the exporter could not connect")
		time.Sleep(5 * time.Millisecond)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("daemon exited with %v", ee)
		}
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not exit within 30s of SIGTERM")
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("exporter did not end")
	}

	log := out.String()
	assert.True(t, strings.Contains(log, "msg=stopping"), "no stopping line in the log")
	assert.True(t, strings.Contains(log, "msg=stopped"), "no stopped line in the log")
	assert.False(t, strings.Contains(log, "panic"), "a panic in the log")
	mu.Lock()
	defer mu.Unlock()
	missing := func() (n int) {
		counts := make([]int, 10*len(sessions)+1)
		for _, c := range []*testenv.Collector{a, b} {
			for id, k := range c.IDCounts() {
				if id < len(counts) {
					counts[id] += int(k)
				}
			}
		}
		for _, first := range acked {
			for id := first; id < first+10; id++ {
				if counts[id] != 1 {
					n++
				}
			}
		}
		return n
	}
	// The daemon wrote everything before it exited; the collectors may still
	// be reading it.
	for deadline := time.Now().Add(10 * time.Second); missing() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d sessions established (%d ended cleanly), %d refused", established, len(acked), refused)
	assert.Zero(t, missing(), "records of sessions that ended cleanly are missing or duplicated")
}
