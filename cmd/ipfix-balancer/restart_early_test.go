package main_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// A restart asked for as soon as the daemon answers on /metrics (an operator's
// restart right after a start; the smoke run of the hook does exactly this)
// is not lost: the daemon answers on /metrics before its receivers run, and a
// SIGUSR2 in between used to be ignored ("restart requested before this
// process serves"). The process now starts its successor once it serves. On
// the shipped configuration, five starts in a row.
func TestRestartRequestedBeforeServing(t *testing.T) {
	s := testenv.ShippedConfig(t, "config/default.toml")
	starting := regexp.MustCompile(`ipfix-balancer starting.*pid=(\d+)`)
	for i := range 5 {
		var mu sync.Mutex
		var out bytes.Buffer
		// A pipe of our own: the successor inherits its write end, so
		// cmd.Wait would wait for the successor too.
		pr, pw, err := os.Pipe()
		require.NoError(t, err)
		cmd := exec.Command(binary, "-config", s.Path)
		cmd.Stdout, cmd.Stderr = pw, pw
		require.NoError(t, cmd.Start())
		_ = pw.Close()
		go func() {
			b := make([]byte, 4096)
			for {
				n, err := pr.Read(b)
				mu.Lock()
				out.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		go func() { _ = cmd.Wait() }()
		log := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
		var successor int
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			testenv.WaitGone(cmd.Process.Pid, 30*time.Second)
			if successor != 0 {
				_ = syscall.Kill(successor, syscall.SIGTERM)
				testenv.WaitGone(successor, 30*time.Second)
			}
			_ = pr.Close()
		})
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := http.Get("http://" + s.Metrics + "/metrics")
			if err == nil {
				_ = resp.Body.Close()
				break
			}
			require.True(t, time.Now().Before(deadline), "start %d: no /metrics after 10 s; log:\n%s", i, log())
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGUSR2))
		if !testenv.WaitGone(cmd.Process.Pid, 15*time.Second) {
			t.Fatalf("start %d: the process did not hand over within 15 s; log:\n%s", i, log())
		}
		pids := starting.FindAllStringSubmatch(log(), -1)
		require.Len(t, pids, 2, "start %d: one successor; log:\n%s", i, log())
		successor, _ = strconv.Atoi(pids[1][1])
		require.NotEqual(t, cmd.Process.Pid, successor)
		require.NoError(t, syscall.Kill(successor, 0), "start %d: the successor serves", i)
		require.NoError(t, syscall.Kill(successor, syscall.SIGTERM))
		require.True(t, testenv.WaitGone(successor, 30*time.Second), "start %d: the successor stops", i)
		successor = 0
	}
}
