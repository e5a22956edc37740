package balancer

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// Restart without loss (hand-over). A new process asks the running one, over the
// unix control socket, for its exporters' sockets. The old process passes each live
// DPI connection as a duplicated fd (SCM_RIGHTS) with what only it knows: the
// partial message at the end of its last read and the session's templates. It then
// closes its own fd — the duplicate keeps the socket open, so the DPI sees no FIN and
// bytes not yet read simply wait in the kernel for the new owner. UDP sockets are
// passed whole, so datagrams queued in the kernel are not lost either.
//
// Wire format on the control connection: each frame is a 4-byte big-endian length,
// a JSON handoverFrame, and for frames that carry a socket the fd as ancillary data
// of the same sendmsg.

// handoverFrame describes one socket passed to the new process.
type handoverFrame struct {
	// Op is "session" (a TCP exporter connection), "udp" (a UDP receiver's socket),
	// "listener" (a listening socket of the daemon's own, such as the metrics
	// listener), "done" (no more sockets) or "error".
	Op       string `json:"op"`
	Receiver string `json:"receiver"`         // "stream/dpi"; the listener's name for "listener"
	Remote   string `json:"remote,omitempty"` // the exporter's address; the listener's for "listener"
	// Carry is the start of a message split across reads; Templates are messages
	// holding every current template of the session (one UDP source each for "udp").
	Carry     []byte            `json:"carry,omitempty"`
	Templates []byte            `json:"templates,omitempty"`
	Sources   map[string][]byte `json:"sources,omitempty"` // UDP: templates per exporter address
	Error     string            `json:"error,omitempty"`
}

// writeFrame sends one frame, with fd (if >= 0) attached.
func writeFrame(c *net.UnixConn, f handoverFrame, fd int) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	msg = append(msg, body...)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	n, oobn, err := c.WriteMsgUnix(msg, oob, nil)
	if err != nil {
		return err
	}
	if n != len(msg) || oobn != len(oob) {
		return fmt.Errorf("short write on control socket: %d of %d", n, len(msg))
	}
	return nil
}

// readFrame reads one frame and the fd attached to it (nil when none).
func readFrame(c *net.UnixConn) (handoverFrame, *os.File, error) {
	var f handoverFrame
	hdr := make([]byte, 4)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(hdr, oob)
	if err != nil {
		return f, nil, err
	}
	if n < 4 {
		if _, err := io.ReadFull(c, hdr[n:]); err != nil {
			return f, nil, err
		}
	}
	var file *os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return f, nil, fmt.Errorf("control message: %w", err)
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				return f, nil, fmt.Errorf("control message: %w", err)
			}
			for i, fd := range fds {
				if i == 0 && file == nil {
					file = os.NewFile(uintptr(fd), "handover")
				} else {
					_ = unix.Close(fd)
				}
			}
		}
	}
	size := binary.BigEndian.Uint32(hdr)
	if size > 64<<20 {
		if file != nil {
			_ = file.Close()
		}
		return f, nil, fmt.Errorf("control frame of %d bytes", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		if file != nil {
			_ = file.Close()
		}
		return f, nil, err
	}
	if err := json.Unmarshal(body, &f); err != nil {
		if file != nil {
			_ = file.Close()
		}
		return f, nil, fmt.Errorf("control frame: %w", err)
	}
	return f, file, nil
}

var errNoPeer = errors.New("no running ipfix-balancer to take over from")

// dialPeer connects to a running predecessor's control socket; errNoPeer when
// there is none (no path, no socket, or a stale socket file).
func dialPeer(path string) (*net.UnixConn, error) {
	if path == "" {
		return nil, errNoPeer
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, errNoPeer
		}
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, nil
}

// InheritListener asks the ipfix-balancer serving controlSocket for its listener
// named name (see Balancer.ShareListener), so that a restart never has two
// processes compete for one port: the successor serves on the very socket its
// predecessor listened on, and the predecessor stops accepting once the hand-over
// is done (connections already queued are not reset, the socket stays open). It
// returns nil and no error when no process answers, or when the running one has
// no such listener on addr (the address was changed, or it had none).
func InheritListener(controlSocket, name, addr string) (net.Listener, error) {
	peer, err := dialPeer(controlSocket)
	if errors.Is(err, errNoPeer) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer peer.Close()
	if err := writeFrame(peer, handoverFrame{Op: "listener-request", Receiver: name}, -1); err != nil {
		return nil, err
	}
	var ln net.Listener
	for {
		f, file, err := readFrame(peer)
		if err != nil {
			if ln != nil {
				_ = ln.Close()
			}
			return nil, err
		}
		switch {
		case f.Op == "done":
			return ln, nil
		case f.Op == "error":
			return ln, errors.New(f.Error)
		case f.Op == "listener" && file != nil && ln == nil && sameListenAddr(f.Remote, addr):
			l, err := net.FileListener(file)
			_ = file.Close()
			if err != nil {
				return nil, fmt.Errorf("%s listener handed over: %w", name, err)
			}
			ln = l
		case file != nil:
			_ = file.Close()
		}
	}
}

// sameListenAddr reports whether a listener bound to have (as net.Addr prints it)
// is what the configuration asks for with want (host:port, host optional).
func sameListenAddr(have, want string) bool {
	h, err1 := net.ResolveTCPAddr("tcp", have)
	w, err2 := net.ResolveTCPAddr("tcp", want)
	if err1 != nil || err2 != nil || h.Port != w.Port {
		return false
	}
	unspecified := func(a *net.TCPAddr) bool { return a.IP == nil || a.IP.IsUnspecified() }
	return h.IP.Equal(w.IP) || unspecified(h) && unspecified(w)
}

// takeUDPSockets asks the predecessor for its UDP receivers' sockets, before our
// receivers start: a UDP receiver that inherits one does not bind its own.
func (b *Balancer) takeUDPSockets(peer *net.UnixConn) error {
	if err := writeFrame(peer, handoverFrame{Op: "udp-request"}, -1); err != nil {
		return err
	}
	for {
		f, file, err := readFrame(peer)
		if err != nil {
			return err
		}
		switch f.Op {
		case "done":
			return nil
		case "error":
			return errors.New(f.Error)
		case "udp":
			b.mu.Lock()
			rr := b.receivers[f.Receiver]
			b.mu.Unlock()
			if rr == nil || rr.r.cfg.Proto != config.UDP || file == nil {
				if file != nil {
					_ = file.Close()
				}
				b.log.Warn("udp socket handed over for an unknown receiver, closed", "receiver", f.Receiver)
				continue
			}
			rr.r.inherit(file, f.Sources)
			b.log.Info("udp socket taken over", "receiver", f.Receiver)
		default:
			if file != nil {
				_ = file.Close()
			}
		}
	}
}

// takeSessions asks the predecessor for its TCP exporter sessions and adopts them
// on our running receivers.
func (b *Balancer) takeSessions(peer *net.UnixConn) (int, error) {
	// The time our start took does not count.
	_ = peer.SetDeadline(time.Now().Add(30 * time.Second))
	// Set before our control socket listens (Run), closed by takeLateSessions.
	b.lateDone = make(chan struct{})
	b.lateAdopts = newAdopter(b)
	if err := writeFrame(peer, handoverFrame{Op: "sessions-request"}, -1); err != nil {
		return 0, err
	}
	a := newAdopter(b)
	for {
		f, file, err := readFrame(peer)
		if err != nil {
			return a.wait(), err
		}
		switch f.Op {
		case "done":
			return a.wait(), nil
		case "error":
			return a.wait(), errors.New(f.Error)
		case "session":
			a.wg.Add(1)
			a.adopt(f, file)
		default:
			if file != nil {
				_ = file.Close()
			}
		}
	}
}

// adopter adopts sessions concurrently: each waits for a turn of its receiver's
// event loop (Enroll), which under load takes milliseconds to seconds; one at a
// time, hundreds of sessions would take minutes, while the loop runs a whole
// batch of them in one turn.
type adopter struct {
	b   *Balancer
	wg  sync.WaitGroup
	sem chan struct{}
	n   atomic.Int64
}

func newAdopter(b *Balancer) *adopter { return &adopter{b: b, sem: make(chan struct{}, 256)} }

// adopt adopts one session in the background; the caller did wg.Add(1).
func (a *adopter) adopt(f handoverFrame, file *os.File) {
	a.sem <- struct{}{}
	go func() {
		defer a.wg.Done()
		defer func() { <-a.sem }()
		if a.b.adoptSession(f, file) {
			a.n.Add(1)
		}
	}()
}

// wait waits until every session given is adopted (or refused) and returns how
// many were adopted.
func (a *adopter) wait() int {
	a.wg.Wait()
	return int(a.n.Load())
}

// adoptSession puts an exporter session passed by the predecessor on its receiver.
func (b *Balancer) adoptSession(f handoverFrame, file *os.File) bool {
	if file == nil {
		return false
	}
	b.mu.Lock()
	rr := b.receivers[f.Receiver]
	b.mu.Unlock()
	if rr == nil || rr.r.cfg.Proto != config.TCP {
		// The new configuration has no such receiver: the DPI will reconnect
		// to whatever listens now.
		_ = file.Close()
		b.log.Warn("exporter session for a receiver no longer configured, closed", "receiver", f.Receiver, "exporter", f.Remote)
		return false
	}
	if err := rr.r.adopt(f, file); err != nil {
		b.log.Warn("cannot adopt exporter session", "receiver", f.Receiver, "exporter", f.Remote, "err", err)
		return false
	}
	return true
}

// takeLateSessions adopts the exporter connections the predecessor accepts after
// the hand-over (its accept queue, handshakes it completed before it stopped
// completing them), until it closes the control connection or we stop. Once we
// have handed over ourselves (a restart back to back), it passes them on to
// our successor as they come (relayLate), without adopting them.
func (b *Balancer) takeLateSessions(ctx context.Context, peer *net.UnixConn) {
	defer close(b.lateDone)
	_ = peer.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		relaying := b.relay != nil
		b.mu.Unlock()
		if relaying {
			// We stop because we handed over: Run waits (awaitLateSessions)
			// until the predecessor has passed its last sessions, which we
			// pass on.
			_ = peer.SetDeadline(time.Now().Add(lateSessionsWait))
			return
		}
		_ = peer.Close()
	})
	defer stop()
	defer peer.Close()
	a := b.lateAdopts
	relayed := 0
	for {
		f, file, err := readFrame(peer)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				b.log.Warn("control connection to the previous process broken", "err", err)
			}
			if n := a.wait(); n > 0 {
				b.log.Info("took over the sessions the previous process accepted while stopping", "sessions", n)
			}
			if relayed > 0 {
				b.log.Info("passed on the sessions the previous process accepted while stopping", "sessions", relayed)
			}
			return
		}
		if f.Op != "session" || file == nil {
			if file != nil {
				_ = file.Close()
			}
			continue
		}
		b.mu.Lock()
		relay := b.relay
		if relay == nil {
			a.wg.Add(1) // under b.mu: serveHandover waits for these once relay is set
		}
		b.mu.Unlock()
		if relay == nil {
			a.adopt(f, file)
			continue
		}
		if err := relayLate(relay, f, file); err != nil {
			b.log.Warn("cannot pass on exporter session", "receiver", f.Receiver, "exporter", f.Remote, "err", err)
			continue
		}
		relayed++
	}
}

// relayLate passes a session frame of our predecessor's on to our successor as
// it came (fd, carry, templates).
func relayLate(send func(handoverFrame, int) error, f handoverFrame, file *os.File) error {
	defer file.Close()
	raw, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	if err := raw.Control(func(fd uintptr) { sendErr = send(f, int(fd)) }); err != nil {
		return err
	}
	return sendErr
}

// serveHandover is the predecessor's side: it answers requests until the new
// process has the sessions, then makes Run return (drain and exit).
func (b *Balancer) serveHandover(c *net.UnixConn) {
	defer c.Close()
	// Receivers pass late sessions from their own loops: one frame at a time.
	var sendMu sync.Mutex
	send := func(f handoverFrame, fd int) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return writeFrame(c, f, fd)
	}
	takingOver := false
	for {
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		f, file, err := readFrame(c)
		if file != nil {
			_ = file.Close()
		}
		if err != nil {
			// The new process went away before it asked for the sessions: it has
			// not taken over, we serve every socket on (a UDP socket it shared
			// with us is ours alone again). A listener request alone ends here.
			if !takingOver {
				return
			}
			b.log.Warn("the new process left the hand-over before taking the sessions, serving on", "err", err)
			return
		}
		b.mu.Lock()
		list := make([]*Receiver, 0, len(b.receivers))
		for _, rr := range b.receivers {
			list = append(list, rr.r)
		}
		b.mu.Unlock()
		var errs []error
		switch f.Op {
		case "listener-request":
			errs = append(errs, b.passListener(f.Receiver, send))
		case "udp-request":
			takingOver = true
			b.log.Info("a new process is taking over: passing udp sockets")
			for _, r := range list {
				if r.cfg.Proto == config.UDP {
					errs = append(errs, r.handOverUDP(send))
				}
			}
		case "sessions-request":
			// The successor asks once its receivers all run: it serves now.
			// Sessions our own predecessor still passes us (late ones, a
			// restart back to back) go on to the successor from now on; the
			// ones being adopted are ours before we pass ours.
			b.startRelay(send)
			b.log.Info("a new process is taking over: passing exporter sessions")
			for _, r := range list {
				if r.cfg.Proto == config.UDP {
					r.releaseUDP()
				}
			}
			for _, r := range list {
				if r.cfg.Proto == config.TCP {
					errs = append(errs, r.handOverSessions(send))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("unknown request %q", f.Op))
		}
		if err := errors.Join(errs...); err != nil {
			b.log.Error("hand-over", "err", err)
			_ = send(handoverFrame{Op: "error", Error: err.Error()}, -1)
		} else {
			_ = send(handoverFrame{Op: "done"}, -1)
		}
		if f.Op == "sessions-request" {
			b.handOnce.Do(func() {
				b.handoversOK.Inc()
				close(b.handover)
			})
			// Connections we accept while we stop are passed on (see
			// Receiver.passOn), and so are the late ones of our predecessor's
			// (takeLateSessions): the successor reads until we close.
			_ = c.SetDeadline(time.Time{})
			<-b.drained
			b.awaitLateSessions()
			return
		}
	}
}

// lateSessionsWait bounds how long a process that handed over waits for its
// own predecessor's control connection to end, passing on what comes: the
// predecessor closes it when its drain ends ([balancer] shutdown_timeout,
// default 5s).
const lateSessionsWait = 20 * time.Second

// startRelay makes takeLateSessions pass the sessions our predecessor still
// passes us on to our successor (send), and waits until the ones it is
// adopting are on our loops, where the hand-over finds them (or, adopted after
// its snapshot, passes them on from OnOpen: see Receiver.adopted).
func (b *Balancer) startRelay(send func(handoverFrame, int) error) {
	if b.lateDone == nil {
		return // no predecessor
	}
	b.mu.Lock()
	b.relay = send
	b.mu.Unlock()
	b.lateAdopts.wait()
}

// awaitLateSessions waits, once we handed over, until our predecessor has
// passed its last sessions and we passed them on (bounded by lateSessionsWait).
func (b *Balancer) awaitLateSessions() {
	if b.lateDone == nil {
		return // no predecessor
	}
	select {
	case <-b.lateDone:
	case <-time.After(lateSessionsWait + time.Second):
		b.log.Warn("the previous process still passes sessions, exiting anyway", "waited", lateSessionsWait)
	}
}

// passListener sends a duplicate of the listener shared under name, if any.
func (b *Balancer) passListener(name string, send func(handoverFrame, int) error) error {
	b.mu.Lock()
	ln := b.shared[name]
	b.mu.Unlock()
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil // none by that name: the successor binds its own
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	b.log.Info("a new process is taking over: passing a listener", "listener", name, "listen", ln.Addr().String())
	// SCM_RIGHTS gives the successor its own fd for the same socket; ours keeps
	// serving until the hand-over is done.
	var sendErr error
	if err := raw.Control(func(fd uintptr) {
		sendErr = send(handoverFrame{Op: "listener", Receiver: name, Remote: ln.Addr().String()}, int(fd))
	}); err != nil {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	return sendErr
}
