package balancer_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// syncBuffer is a log sink safe for the receiver's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reconnectingExporter connects again and again, as a DPI whose session was cut
// does: each time it sends a few records, half-closes and waits for the
// balancer's answer. A clean end of stream (EOF) means every byte it sent was
// read; a reset means the balancer dropped what it had not read, which the DPI
// sees. acked holds the records of the sessions that ended cleanly.
type reconnectingExporter struct {
	mu          sync.Mutex
	acked       map[string]int
	established int
	refused     int
}

func (e *reconnectingExporter) run(addr string, batches []*traffic, done <-chan struct{}) {
	for _, tr := range batches {
		select {
		case <-done:
			return
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			e.mu.Lock()
			e.refused++
			e.mu.Unlock()
			// A refused (or unanswered) connection sent nothing.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		e.mu.Lock()
		e.established++
		e.mu.Unlock()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, werr := conn.Write(tr.stream())
		if werr == nil {
			werr = conn.(*net.TCPConn).CloseWrite()
		}
		if werr == nil {
			_, werr = io.Copy(io.Discard, conn) // nil at EOF
		}
		_ = conn.Close()
		if werr == nil {
			e.mu.Lock()
			for k, v := range tr.records {
				e.acked[k] += v
			}
			e.mu.Unlock()
		}
	}
}

// An exporter that reconnects while the receiver stops is either refused
// before it can send, or read to the end and its records delivered: never
// accepted and then cut. The stop does not panic (in RoundRobin a stopped
// subreceiver once still said up with no connection) and says so in the log.
func TestStopRefusesNewSessions(t *testing.T) {
	batches := make([]*traffic, 0, 300)
	for i := range cap(batches) {
		batches = append(batches, makeTraffic(t, 10, 1, 1400, uint64(1+i*10)))
	}
	for _, mode := range []config.Mode{config.RoundRobin, config.Recording} {
		t.Run(mode.String(), func(t *testing.T) {
			a, b := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")
			dir := t.TempDir()
			cfg := receiverConfig(mode, a, b)
			if mode == config.Recording {
				cfg = recordingConfig(dir, "fullflow", time.Hour)
				cfg.Recording.Export = []config.Subreceiver{{Addr: a.Addr(), Proto: config.TCP}}
			}
			var logs syncBuffer
			opts := balancer.Options{ShutdownTimeout: 2 * time.Second,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
			r, err := balancer.New(cfg, opts)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			runDone := make(chan error, 1)
			go func() { runDone <- r.Run(ctx) }()
			select {
			case <-r.Ready():
			case err := <-runDone:
				t.Fatalf("receiver did not start: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("receiver not ready after 5s")
			}
			up := `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="` + a.Addr() + `"}`
			testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return metricValue(t, r, up) == 1 })

			// A DPI that stays connected through the stop, as a real one does.
			dpi, err := net.Dial("tcp", r.Addr().String())
			require.NoError(t, err)
			defer dpi.Close()
			first := makeTraffic(t, 1000, 2, 1400, 1_000_000)
			_, err = dpi.Write(first.stream())
			require.NoError(t, err)
			testenv.WaitFor(t, 10*time.Second, "first records received", func() bool {
				return metricValue(t, r, `ipfix_balancer_received_records_total{stream="fullflow",dpi="0"}`) >= float64(first.count)
			})

			e := &reconnectingExporter{acked: make(map[string]int)}
			exporterDone := make(chan struct{})
			stopExporter := make(chan struct{})
			go func() { defer close(exporterDone); e.run(r.Addr().String(), batches, stopExporter) }()
			testenv.WaitFor(t, 10*time.Second, "reconnecting exporter at work", func() bool {
				e.mu.Lock()
				defer e.mu.Unlock()
				return e.established >= 5
			})
			cancel()
			select {
			case err := <-runDone:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("receiver did not stop within 30s")
			}
			close(stopExporter)
			select {
			case <-exporterDone:
			case <-time.After(30 * time.Second):
				t.Fatal("exporter did not end")
			}

			var got map[string]int
			if mode == config.Recording {
				parts, err := filepath.Glob(filepath.Join(dir, "*", "*.part"))
				require.NoError(t, err)
				assert.Empty(t, parts, "a dump left open")
				files, err := filepath.Glob(filepath.Join(dir, "*", "*.ipfix"))
				require.NoError(t, err)
				_, got = readDumps(t, files)
			} else {
				got = union(a, b)
			}
			for k, v := range first.records {
				assert.Equal(t, v, got[k], "a record of the connected DPI is missing")
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			missing := 0
			for k, v := range e.acked {
				if got[k] < v {
					missing++
				}
			}
			t.Logf("%d sessions established, %d refused", e.established, e.refused)
			assert.Zero(t, missing, "records of sessions that ended cleanly (%d established, %d refused) are in no output", e.established, e.refused)
			assert.Contains(t, logs.String(), `msg="receiver stopping"`)
			assert.Contains(t, logs.String(), `msg="receiver stopped"`)
		})
	}
}
