package main_test

import (
	"net/http"
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
	for i := range 5 {
		d := testenv.LaunchDaemon(t, binary, "-config", s.Path)
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := http.Get("http://" + s.Metrics + "/metrics")
			if err == nil {
				_ = resp.Body.Close()
				break
			}
			require.True(t, time.Now().Before(deadline), "start %d: no /metrics after 10 s; log:\n%s", i, d.Log())
			time.Sleep(time.Millisecond)
		}
		old := d.PID()
		d.Restart() // fails unless the successor took over and serves
		require.NotEqual(t, old, d.PID(), "start %d: a successor", i)
		d.Stop()
		require.True(t, testenv.WaitGone(d.PID(), 30*time.Second), "start %d: the successor stops", i)
	}
}
