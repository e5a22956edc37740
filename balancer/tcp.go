package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// readBufferBytes is gnet's per-loop read buffer: one read, one dispatch batch and
// one writev per subreceiver. At 1 MiB a batch holds ~750 messages of 1400 B; it
// cost ~11% less CPU per message than 256 KiB in bench/ (fewer writev calls, and
// fewer wake-ups of each subreceiver's reader, which a VM makes dear).
const readBufferBytes = 1 << 20

// bootConn marks the socketpair end registered on the loop at start: its OnOpen is
// the only deterministic moment to run code on the loop's thread before traffic
// (gnet has no per-loop boot hook), so the loop pins itself there.
type bootConn struct{ peer *os.File }

// tcpHandler is the gnet event handler of a TCP receiver. One loop serves the
// listener, the exporters' connections and the subreceivers' connections.
type tcpHandler struct {
	gnet.BuiltinEventEngine
	r       *Receiver
	booted  chan gnet.Engine
	running chan struct{}
	started chan error
	tick    sync.Once
}

var _ gnet.EventHandler = (*tcpHandler)(nil)

func (h *tcpHandler) OnBoot(eng gnet.Engine) gnet.Action {
	h.booted <- eng
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine, which gnet starts after registering its
// loops: the first tick is the earliest moment Engine.Register is race-free.
func (h *tcpHandler) OnTick() (time.Duration, gnet.Action) {
	h.tick.Do(func() { close(h.running) })
	return time.Hour, gnet.None
}

func (h *tcpHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	r := h.r
	switch v := c.Context().(type) {
	case *bootConn:
		r.loop = c.EventLoop()
		// Its job is done: closing the peer makes gnet close this end too.
		_ = v.peer.Close()
		h.started <- r.pin()
	case *forward.TCPOnLoop:
		v.Opened(c)
	case *session:
		if r.adopted(v, c) {
			return nil, gnet.Close
		}
	default:
		if r.sessionsClosed {
			// Stopping, past reading: no data of it would reach an output.
			return nil, gnet.Close
		}
		remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		s := newSession(remote, 0)
		c.SetContext(s)
		r.sessions[s] = c
		r.m.sessions.Store(int64(len(r.sessions)))
		r.m.sessionsTotal.Inc()
		r.log.Info("exporter connected", "exporter", remote)
		if r.passOn != nil {
			if err := r.passSession(s, c, true); err != nil {
				r.log.Warn("cannot hand over new exporter session", "exporter", remote, "err", err)
			} else {
				return nil, gnet.Close // at once: no read of ours in between
			}
		}
	}
	return nil, gnet.None
}

// pin pins the loop's OS thread (gnet locks it with WithLockOSThread) to the
// configured CPUs. A CPU this machine lacks is a warning: the loop runs unpinned.
func (r *Receiver) pin() error {
	cpus := r.cfg.CPU
	if len(cpus) == 0 {
		return nil
	}
	if missing := affinity.Missing(cpus); len(missing) > 0 {
		r.log.Warn("cpu not on this machine, running unpinned", "cpu", cpus.String(), "missing", missing.String())
		return nil
	}
	if err := affinity.Pin(cpus); err != nil {
		r.log.Warn("cannot pin event loop, running unpinned", "cpu", cpus.String(), "err", err)
		return nil
	}
	r.log.Info("event loop pinned", "cpu", cpus.String(), "tid", affinity.ThreadID())
	return nil
}

// repin applies a changed cpu setting to the loop's thread (a reload): pinned to
// the new CPUs, or back on every CPU of the process. Event loop only.
func (r *Receiver) repin() {
	cpus := r.cfg.CPU
	if len(cpus) > 0 && len(affinity.Missing(cpus)) == 0 {
		_ = r.pin()
		return
	}
	if len(cpus) > 0 {
		r.log.Warn("cpu not on this machine, running unpinned", "cpu", cpus.String(), "missing", affinity.Missing(cpus).String())
	}
	if err := affinity.Pin(affinity.Online()); err != nil {
		r.log.Warn("cannot unpin event loop", "err", err)
		return
	}
	r.log.Info("event loop unpinned", "tid", affinity.ThreadID())
}

func (h *tcpHandler) OnTraffic(c gnet.Conn) gnet.Action {
	s, ok := c.Context().(*session)
	if !ok {
		// Subreceivers and the boot socket have nothing to say to us.
		_, _ = c.Discard(c.InboundBuffered())
		return gnet.None
	}
	if s.passing {
		return h.r.passWoken(s, c)
	}
	return h.r.onTraffic(s, c)
}

// onTraffic frames what one read brought, dispatches every complete message and
// writes each output's batch once. The read buffer is consumed whole; a partial
// message at its end moves to the session's carry.
func (r *Receiver) onTraffic(s *session, c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	n := len(buf)
	if len(s.carry) > 0 {
		used, err := r.completeCarry(s, buf)
		if err != nil {
			return r.lostFraming(s, c, err)
		}
		buf = buf[used:]
	}
	for len(buf) > 0 {
		size, err := ipfix.FrameLength(buf)
		if err != nil {
			r.flush()
			return r.lostFraming(s, c, err)
		}
		if size == 0 {
			break
		}
		msg, rest := buf[:size], buf[size:]
		if next, err := ipfix.FrameLength(rest); err == nil && next > 0 {
			// Two complete messages: their records are counted side by side.
			// A framing error after msg is found by the next turn.
			r.dispatchPair(s, msg, rest[:next])
			buf = rest[next:]
			continue
		}
		r.dispatch(s, msg)
		buf = rest
	}
	r.flush()
	if len(buf) > 0 {
		s.carry = append(s.carry[:0], buf...)
	}
	// Discard(n <= 0) would drop everything gnet holds; n > 0 here.
	if n > 0 {
		_, _ = c.Discard(n)
	}
	return gnet.None
}

// completeCarry moves bytes from buf into the carried message; when it completes
// it is dispatched (it stays valid until flush: the carry is only rewritten after).
func (r *Receiver) completeCarry(s *session, buf []byte) (used int, err error) {
	if len(s.carry) < ipfix.HeaderLen {
		used = min(ipfix.HeaderLen-len(s.carry), len(buf))
		s.carry = append(s.carry, buf[:used]...)
		if len(s.carry) < ipfix.HeaderLen {
			return used, nil
		}
	}
	if _, err := ipfix.FrameLength(s.carry); err != nil {
		return used, err
	}
	size := int(uint16(s.carry[2])<<8 | uint16(s.carry[3]))
	more := min(size-len(s.carry), len(buf)-used)
	s.carry = append(s.carry, buf[used:used+more]...)
	used += more
	if len(s.carry) == size {
		// Outputs reference the message until the batch is written, so it moves to
		// the spare buffer, untouched until the next message completes (after that
		// flush), and the tail of this read goes into the other one.
		r.dispatch(s, s.carry)
		s.carry, s.spare = s.spare[:0], s.carry
	}
	return used, nil
}

// lostFraming closes an exporter connection whose byte stream is no longer a
// sequence of IPFIX messages: nothing after the bad header can be trusted.
func (r *Receiver) lostFraming(s *session, c gnet.Conn, err error) gnet.Action {
	r.countParseError(err)
	r.log.Warn("exporter stream lost framing, closing", "exporter", s.remote, "err", err)
	return gnet.Close
}

func (h *tcpHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	r := h.r
	switch v := c.Context().(type) {
	case *session:
		delete(r.sessions, v)
		r.m.sessions.Store(int64(len(r.sessions)))
		r.passReport(v, nil) // it ended before its turn: nothing to pass
		r.updateTemplateGauge()
		if v.passed {
			return gnet.None
		}
		r.endSession(v)
		if len(v.carry) > 0 {
			r.countParseError(ipfix.ErrShortMessage)
		}
		// io.EOF: the exporter closed its connection, a normal end.
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			r.log.Info("exporter disconnected", "exporter", v.remote, "err", err)
		} else {
			r.log.Info("exporter disconnected", "exporter", v.remote)
		}
	case *forward.TCPOnLoop:
		v.Closed(c, err)
	}
	return gnet.None
}

// runTCP runs the gnet engine of a TCP receiver until ctx ends.
func (r *Receiver) runTCP(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx
	h := &tcpHandler{r: r, booted: make(chan gnet.Engine, 1), running: make(chan struct{}), started: make(chan error, 1)}
	done := make(chan error, 1)
	go func() {
		done <- gnet.Run(h, "tcp://"+r.cfg.Listen.String(),
			gnet.WithMulticore(false),
			gnet.WithNumEventLoop(1),
			gnet.WithLockOSThread(true),
			// SO_REUSEPORT lets a new process bind while the old one still serves
			// (restart hand-over); SO_REUSEADDR rebinding past TIME_WAIT.
			gnet.WithReusePort(true),
			gnet.WithReuseAddr(true),
			gnet.WithReadBufferCap(readBufferBytes),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithTicker(true),
			gnet.WithLogger(gnetLogger{r.log}),
		)
	}()
	select {
	case r.eng = <-h.booted:
	case err := <-done:
		return fmt.Errorf("receiver %s: listen tcp %s: %w", r.name, r.cfg.Listen, err)
	}
	select {
	case <-h.running:
	case err := <-done:
		return fmt.Errorf("receiver %s: listen tcp %s: %w", r.name, r.cfg.Listen, err)
	}
	if err := r.registerBoot(); err != nil {
		_ = r.eng.Stop(context.Background())
		<-done
		return fmt.Errorf("receiver %s: %w", r.name, err)
	}
	select {
	case <-h.started:
	case err := <-done:
		return fmt.Errorf("receiver %s: listen tcp %s: %w", r.name, r.cfg.Listen, err)
	}
	if fd, err := r.eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			r.addr = sockaddrToTCP(sa)
		}
		_ = unix.Close(fd)
	}
	r.onLoop(func() {
		for _, o := range r.outputs {
			o.Start()
		}
		if r.rrs != nil {
			r.rrs.p.Start(r.pumpRR)
		}
	})
	r.log.Info("receiver listening", "listen", r.addr, "proto", "tcp", "mode", r.cfg.Mode.String(), "outputs", len(r.outputs))
	close(r.ready)
	stopStats := r.startStats()
	defer stopStats()
	stopSettle := r.settleEvery(time.Second)
	defer stopSettle()

	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("receiver %s: %w", r.name, err)
	}
	r.drain()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	_ = r.eng.Stop(stopCtx)
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("receiver %s: %w", r.name, err)
		}
	case <-stopCtx.Done():
	}
	return nil
}

// settleEvery brings the TCP subreceivers' sent counters and queue gauges up to
// date while no batch does (gnet writes its buffer out without telling us).
func (r *Receiver) settleEvery(d time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			r.onLoop(func() {
				for _, o := range r.outputs {
					if s, ok := o.(*forward.TCPOnLoop); ok {
						s.Settle()
					}
				}
			})
		}
	}()
	return func() { close(done) }
}

// registerBoot puts one end of a socketpair on the loop; see bootConn.
func (r *Receiver) registerBoot() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	f := os.NewFile(uintptr(fds[0]), "boot")
	conn, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		_ = unix.Close(fds[1])
		return fmt.Errorf("boot conn: %w", err)
	}
	peer := os.NewFile(uintptr(fds[1]), "boot-peer")
	ctx := gnet.NewContext(gnet.NewNetConnContext(context.Background(), conn), &bootConn{peer: peer})
	if _, err = r.eng.Register(ctx); err != nil {
		_ = conn.Close()
		_ = peer.Close()
		return fmt.Errorf("register boot conn: %w", err)
	}
	return nil
}

// drain stops a receiver: it stops accepting (see refuseConnections), reads the
// exporters' connections until they end or for half of ShutdownTimeout, closes
// them, and waits, bounded by ShutdownTimeout, until the outputs have written
// what they hold; then it stops the outputs.
func (r *Receiver) drain() {
	start := time.Now()
	deadline := start.Add(r.opts.ShutdownTimeout)
	r.log.Info("receiver stopping", "shutdown_timeout", r.opts.ShutdownTimeout)
	if fd, err := r.eng.Dup(); err == nil {
		if err := refuseConnections(fd, r.opts.ShutdownTimeout/4); err != nil {
			r.log.Warn("cannot refuse new exporter connections while stopping", "err", err)
		}
		_ = unix.Close(fd)
	}
	sessions := func() int {
		n := make(chan int, 1)
		// After the accept queue emptied: a connection accepted from it is a
		// session by the time this runs on the loop.
		r.onLoop(func() { n <- len(r.sessions) })
		select {
		case k := <-n:
			return k
		case <-time.After(time.Second):
			return -1
		}
	}
	for readUntil := start.Add(r.opts.ShutdownTimeout / 2); time.Now().Before(readUntil) && sessions() != 0; {
		time.Sleep(10 * time.Millisecond)
	}
	r.onLoop(func() {
		r.sessionsClosed = true
		for _, c := range r.sessions {
			_ = c.Close()
		}
	})
	for time.Now().Before(deadline) && sessions() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		left := make(chan int, 1)
		r.onLoop(func() { left <- r.pendingBytes() })
		select {
		case n := <-left:
			if n == 0 {
				r.stopOutputs()
				r.waitRetired(deadline)
				r.log.Info("receiver stopped", "took", time.Since(start).Round(time.Millisecond))
				return
			}
		case <-time.After(time.Second):
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.log.Warn("shutdown deadline reached with data still queued")
	r.stopOutputs()
	r.waitRetired(deadline)
	r.log.Info("receiver stopped", "took", time.Since(start).Round(time.Millisecond))
}

func (r *Receiver) stopOutputs() {
	done := make(chan struct{})
	r.onLoop(func() {
		if r.rrs != nil {
			// What the kernels took of the replay is not replayed again.
			r.rrs.settle()
		}
		for _, o := range r.outputs {
			o.Stop()
		}
		r.finishRetiringAll()
		close(done)
	})
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

func sockaddrToTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}
