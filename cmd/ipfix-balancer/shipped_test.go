package main_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// The files we ship, run as they are (only ports and directories moved): a
// restart by SIGUSR2 switches processes with the metrics listener on, /metrics
// answers before and after, and a stop leaves no .part dump.
func TestRestartOnShippedConfig(t *testing.T) {
	for _, rel := range []string{"config/default.toml", "packaging/balancer.toml"} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			s := testenv.ShippedConfig(t, rel)
			require.NotEmpty(t, s.Metrics, "the shipped file turns metrics on")
			require.NotEmpty(t, s.ControlSocket)
			d := startDaemon(t, s.Path)
			testenv.Scrape(t, s.Metrics)
			// A Prometheus that scrapes all along never finds the port closed.
			stopScraping := make(chan struct{})
			scraped := make(chan [2]int, 1)
			go func() {
				c := &http.Client{Timeout: 2 * time.Second}
				ok, failed := 0, 0
				defer func() { scraped <- [2]int{ok, failed} }()
				for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					select {
					case <-stopScraping:
						return
					default:
					}
					resp, err := c.Get("http://" + s.Metrics + "/metrics")
					if err != nil {
						t.Logf("scrape: %v", err)
						failed++
						continue
					}
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						t.Logf("scrape: status %d, %v", resp.StatusCode, err)
						failed++
						continue
					}
					ok++
				}
			}()
			for i := range 3 {
				old := d.PID()
				d.Restart()
				require.NotEqual(t, old, d.PID(), "restart %d: the PID must change", i+1)
				body := testenv.Scrape(t, s.Metrics)
				assert.Contains(t, body, "ipfix_balancer_received_messages_total")
			}
			close(stopScraping)
			n := <-scraped
			assert.Zero(t, n[1], "scrapes failed during the restarts (%d answered)", n[0])
			assert.Positive(t, n[0])
			d.Stop()
			assert.NotContains(t, d.Log(), "panic")
			assert.Empty(t, findParts(t, s.DumpDir), "a clean stop leaves no .part dump")
		})
	}
}

// findParts lists the .part files under dir.
func findParts(t *testing.T, dir string) []string {
	t.Helper()
	var parts []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".part") {
			parts = append(parts, p)
		}
		return nil
	})
	return parts
}
