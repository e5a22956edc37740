//go:build linux

package balancer

import (
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// An exporter that connects around the hand-over, while the new process (played
// here by the test on the control socket) takes the sessions, ends up with the
// new process, whether the old one accepted it before or after answering: every
// connection the kernel completed on the old listener arrives as a "session"
// frame, none stays behind to be closed by the old process's drain.
func TestConnectionsAroundHandoverArePassedOn(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	rc := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.TCP,
		Mode: config.All, QueueBytes: 8 << 20, MTU: 1500,
		Subreceivers: []config.Subreceiver{{Addr: c.Addr(), Proto: config.TCP}}}
	control := filepath.Join(t.TempDir(), "control.sock")
	b := runBalancer(t, &config.Config{ControlSocket: control, Receivers: []config.Receiver{rc}})
	addr := b.Receiver(rc.Name()).Addr().String()

	peer, err := dialPeer(control)
	require.NoError(t, err)
	defer peer.Close()
	require.NoError(t, writeFrame(peer, handoverFrame{Op: "udp-request"}, -1))
	f, _, err := readFrame(peer)
	require.NoError(t, err)
	require.Equal(t, "done", f.Op)

	// Exporters connect all along, from before the request to after the old
	// process stopped completing handshakes.
	var mu sync.Mutex
	var conns []net.Conn
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := net.DialTimeout("tcp", addr, 50*time.Millisecond)
				if err != nil {
					continue // refused by the socket filter: never established
				}
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond) // some connect before the request
	require.NoError(t, writeFrame(peer, handoverFrame{Op: "sessions-request"}, -1))
	passed, late := 0, 0
	done := false
	_ = peer.SetDeadline(time.Now().Add(30 * time.Second))
	for {
		f, file, err := readFrame(peer)
		if err != nil {
			break // the old process closed the control connection
		}
		if file != nil {
			_ = file.Close()
		}
		switch f.Op {
		case "done":
			done = true
		case "session":
			passed++
			if done {
				late++
			}
		}
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, conn := range conns {
		_ = conn.Close()
	}
	t.Logf("%d connections established, %d passed (%d after the answer)", len(conns), passed, late)
	require.True(t, done)
	assert.Equal(t, len(conns), passed, "connections established on the old listener but not passed on")
}
