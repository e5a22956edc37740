//go:build linux

package balancer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

const (
	// udpBatch is the number of datagrams one recvmmsg takes: one dispatch batch
	// and one flush per output. Measured: recvmmsg(64) into preallocated buffers
	// reads ~3× what gnet's one-recvfrom-per-datagram loop does, and 256 drains a
	// full socket 5-10% faster than 64 (fewer writes to each subreceiver).
	udpBatch = 256
	// udpSlot holds any UDP payload (at most 65507 bytes over IPv4), so no
	// datagram is ever truncated. Untouched pages of a slot cost no memory.
	udpSlot = 1 << 16
	// udpHousekeeping is how often idle sessions and expired templates are removed
	// and the kernel's drop counter read.
	udpHousekeeping = time.Second
	// skMeminfoDrops is SK_MEMINFO_DROPS in the SO_MEMINFO array (linux/sock_diag.h):
	// datagrams the kernel dropped because the receive buffer was full.
	skMeminfoDrops = 8
	skMeminfoVars  = 9
	// udpMaxSources bounds the exporters (source addresses) a UDP receiver
	// keeps state for, and udpMaxSourceTemplates the templates of each, over
	// all its domains: datagrams of a source beyond the first are dropped and
	// counted (reason too_many_sources), templates beyond the second refused and
	// counted (parse error too_many_templates). A DPI's stream comes from a few
	// sources with tens of templates; the limits only stop a flood of spoofed
	// or port-hopping sources from taking the memory.
	udpMaxSources         = 1024
	udpMaxSourceTemplates = 1024
	// udpRefusalLogEvery is the least time between two log lines about
	// refused sources.
	udpRefusalLogEvery = time.Minute
)

// udpLoop is the event loop of a UDP receiver: one goroutine, locked to its OS
// thread and pinned like a gnet loop, that reads datagrams with recvmmsg into
// preallocated buffers, dispatches their messages and flushes the outputs once
// per batch. It implements gnet.EventLoop so that Receiver.onLoop works the
// same for TCP and UDP receivers: Execute queues a task that the loop runs
// between batches (an eventfd wakes it when the socket is idle).
//
// Exporters are told apart by source address (RFC 7011 §8.4: a UDP exporter's
// templates are scoped to its source); each gets a session whose templates
// expire after the receiver's TemplateLifetime, and which is removed after
// being silent that long.
type udpLoop struct {
	r   *Receiver
	fd  int // the listening socket; -1 once closed
	efd int // eventfd that wakes the loop from poll

	mu       sync.Mutex
	tasks    []func()
	hasTasks atomic.Bool
	ended    bool // the loop returned: tasks are dropped and efd is closed
	endCh    chan struct{}

	// Loop goroutine only.
	bufs     [][]byte
	iovs     []unix.Iovec
	names    [][unix.SizeofSockaddrInet6]byte
	msgs     []unix.Mmsghdr
	pfds     [2]unix.PollFd
	run      []func()
	byAddr   map[netip.AddrPort]*session
	last     *session // session of the previous datagram: usually the same exporter
	cur      *session // session of the datagram being split
	onMsg    func(msg []byte)
	lastHK   time.Time
	drops    uint32 // kernel drop counter at the last housekeeping
	kdropped *metrics.Counter
	// refused counts the datagrams of sources over udpMaxSources since the
	// last log line about them, at refusedLog.
	refused    int
	refusedLog time.Time
}

var _ gnet.EventLoop = (*udpLoop)(nil)

var errUDPLoop = errors.New("not supported on a udp receiver loop")

// newUDPLoop opens the receiver's socket and the loop's buffers.
func newUDPLoop(r *Receiver) (*udpLoop, error) {
	fd, err := r.udpSocket()
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	l := &udpLoop{
		r: r, fd: fd, efd: efd,
		bufs:   make([][]byte, udpBatch),
		iovs:   make([]unix.Iovec, udpBatch),
		names:  make([][unix.SizeofSockaddrInet6]byte, udpBatch),
		msgs:   make([]unix.Mmsghdr, udpBatch),
		byAddr: make(map[netip.AddrPort]*session),
		endCh:  make(chan struct{}),
		kdropped: r.set.GetOrCreateCounter(
			`ipfix_balancer_udp_socket_dropped_datagrams_total{` + r.labels + `}`),
	}
	l.onMsg = l.onMessage
	arena := make([]byte, udpBatch*udpSlot)
	for i := range l.msgs {
		l.bufs[i] = arena[i*udpSlot : (i+1)*udpSlot : (i+1)*udpSlot]
		l.iovs[i].Base = &l.bufs[i][0]
		l.iovs[i].SetLen(udpSlot)
		h := &l.msgs[i].Hdr
		h.Name = &l.names[i][0]
		h.Iov = &l.iovs[i]
		h.SetIovlen(1)
	}
	l.pfds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	l.pfds[1] = unix.PollFd{Fd: int32(efd), Events: unix.POLLIN}
	l.setReadBuffer(r.cfg.UDPReadBuffer)
	return l, nil
}

// listenUDP binds a non-blocking UDP socket with SO_REUSEADDR and SO_REUSEPORT
// (a new process binds while the old one drains, as for TCP).
func listenUDP(ap netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if ap.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("SO_REUSEPORT", err)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		a := ap.Addr()
		if a.IsUnspecified() {
			// [::] takes IPv4 too (v4-mapped), as Go's net package does.
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
				return fail("IPV6_V6ONLY", err)
			}
		}
		sa6 := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return fail("zone", err)
			}
			sa6.ZoneId = uint32(ifi.Index)
		}
		sa = sa6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

// setReadBuffer sets SO_RCVBUF. The kernel caps SO_RCVBUF at net.core.rmem_max;
// SO_RCVBUFFORCE (CAP_NET_ADMIN) is not capped, so it is tried first.
func (l *udpLoop) setReadBuffer(want int) {
	if want <= 0 {
		return
	}
	if err := unix.SetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want); err != nil {
		_ = unix.SetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, want)
	}
	// The kernel doubles the value for its bookkeeping and reports the double.
	got, err := unix.GetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err == nil && got/2 < want {
		l.r.log.Warn("udp read buffer smaller than configured, raise net.core.rmem_max",
			"want_bytes", want, "got_bytes", got/2)
	}
}

// setUDPReadBuffer applies a changed udp_read_buffer_bytes to the running socket
// (a reload); 0 leaves it as it is. Event loop only.
func (r *Receiver) setUDPReadBuffer(n int) {
	if l, ok := r.loop.(*udpLoop); ok && l.fd >= 0 {
		l.setReadBuffer(n)
		r.log.Info("udp read buffer set", "bytes", n)
	}
}

// addr returns the bound address (port 0 resolved).
func (l *udpLoop) addr() *net.UDPAddr {
	sa, err := unix.Getsockname(l.fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.UDPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.UDPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// runUDP runs a UDP receiver until ctx ends, then drains its outputs for up to
// ShutdownTimeout.
func (r *Receiver) runUDP(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx
	l, err := newUDPLoop(r)
	if err != nil {
		return fmt.Errorf("receiver %s: listen udp %s: %w", r.name, r.cfg.Listen, err)
	}
	r.loop = l
	r.addr = l.addr()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.loop(ctx, started) }()
	<-started
	r.log.Info("receiver listening", "listen", r.addr, "proto", "udp", "mode", r.cfg.Mode.String(), "outputs", len(r.outputs))
	close(r.ready)
	stopStats := r.startStats()
	defer stopStats()

	// Wake the loop from poll when ctx ends.
	go func() {
		select {
		case <-ctx.Done():
			l.wake()
		case <-l.endCh:
		}
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("receiver %s: %w", r.name, err)
	}
	return nil
}

// loop is the receiver's event loop goroutine.
func (l *udpLoop) loop(ctx context.Context, started chan<- struct{}) error {
	// Never unlocked: when the loop ends its (possibly pinned) thread exits with it
	// instead of going back to the runtime to run other goroutines.
	runtime.LockOSThread()
	r := l.r
	_ = r.pin()
	defer l.end()
	for _, o := range r.outputs {
		o.Start()
	}
	l.lastHK = r.opts.Now()
	// The predecessor's templates go to the outputs before the first
	// datagram is read: a datagram read first would reach a dump (or a
	// subreceiver) before the templates it needs.
	if src := r.inheritedSources; src != nil {
		r.inheritedSources = nil
		l.adoptSources(src)
	}
	close(started)

	for ctx.Err() == nil {
		if l.hasTasks.Load() {
			l.runTasks()
		}
		if l.fd < 0 {
			// Handed over to a new process: serve tasks until ctx ends.
			if err := l.wait(int(udpHousekeeping / time.Millisecond)); err != nil {
				l.drain()
				return err
			}
			continue
		}
		n, err := l.recv()
		if n > 0 {
			l.handle(n)
			continue
		}
		switch {
		case err == unix.EAGAIN:
			if err := l.wait(int(udpHousekeeping / time.Millisecond)); err != nil {
				l.drain()
				return err
			}
			if now := r.opts.Now(); now.Sub(l.lastHK) >= udpHousekeeping {
				l.housekeeping(now)
			}
		case err == unix.EINTR:
		default:
			l.drain()
			return fmt.Errorf("recvmmsg: %w", err)
		}
	}
	l.drain()
	return nil
}

// recv reads up to udpBatch datagrams without blocking.
func (l *udpLoop) recv() (int, error) {
	if l.fd < 0 { // handed over to a new process
		return 0, unix.EAGAIN
	}
	for i := range l.msgs {
		l.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	// Raw, as it never blocks (MSG_DONTWAIT): see forward.IOVWriter.Write.
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&l.msgs[0])),
		uintptr(len(l.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// wait blocks until the socket is readable, a task is posted, or timeout (ms).
func (l *udpLoop) wait(timeout int) error {
	l.pfds[0].Revents, l.pfds[1].Revents = 0, 0
	pfds := l.pfds[:]
	if l.fd < 0 {
		pfds = l.pfds[1:]
	}
	_, err := unix.Poll(pfds, timeout)
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("poll: %w", err)
	}
	if l.pfds[1].Revents&unix.POLLIN != 0 {
		var b [8]byte
		_, _ = unix.Read(l.efd, b[:])
	}
	return nil
}

// handle dispatches the messages of n received datagrams and flushes once.
func (l *udpLoop) handle(n int) {
	r := l.r
	now := r.opts.Now()
	for i := range n {
		m := &l.msgs[i]
		src := sourceAddr(&l.names[i], m.Hdr.Namelen)
		s := l.session(src, now)
		if s == nil {
			l.refuse(src, l.bufs[i][:m.Len], now)
			continue
		}
		s.lastSeen = now
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			r.countParseError(ipfix.ErrShortMessage)
			r.m.dropped[forward.ReasonMalformed].Inc()
			continue
		}
		l.cur = s
		// A message with bad sets is dropped alone by dispatch (which walks the
		// sets anyway): the datagram's other messages are framed by their own
		// headers (RFC 7011 §10.3.3). Only a header that cannot frame ends it.
		for d := l.bufs[i][:m.Len]; len(d) > 0; {
			size, err := ipfix.FrameLength(d)
			if err == nil && size == 0 {
				err = ipfix.ErrShortMessage // the header claims more than the datagram holds
			}
			if err != nil {
				r.countParseError(err)
				r.m.dropped[forward.ReasonMalformed].Inc()
				break
			}
			l.onMsg(d[:size])
			d = d[size:]
		}
	}
	l.cur = nil
	r.flush()
	if now.Sub(l.lastHK) >= udpHousekeeping {
		l.housekeeping(now)
	}
}

func (l *udpLoop) onMessage(msg []byte) { l.r.dispatch(l.cur, msg) }

// session returns the session of exporter src, creating it on its first
// datagram; nil when src is new and the receiver holds udpMaxSources already.
func (l *udpLoop) session(src netip.AddrPort, now time.Time) *session {
	if l.last != nil && l.last.remote == src {
		return l.last
	}
	s := l.byAddr[src]
	if s == nil {
		if len(l.byAddr) >= udpMaxSources {
			return nil
		}
		r := l.r
		s = newSession(src, r.cfg.TemplateLifetime)
		s.templates.SetLimit(udpMaxSourceTemplates)
		l.byAddr[src] = s
		r.sessions[s] = nil // no connection: see Receiver.sessions
		r.m.sessions.Store(int64(len(l.byAddr)))
		r.m.sessionsTotal.Inc()
		// Counted (exporter_sessions_total); a line each would flood the log
		// with sources that hop ports.
		r.log.Debug("exporter seen", "exporter", src)
	}
	l.last = s
	return s
}

// refuse drops datagram d of src, a source over udpMaxSources: its messages
// are counted, and a line is logged at most once per udpRefusalLogEvery.
func (l *udpLoop) refuse(src netip.AddrPort, d []byte, now time.Time) {
	r := l.r
	n := 0
	for len(d) > 0 {
		size, err := ipfix.FrameLength(d)
		if err != nil || size == 0 {
			n++ // what cannot be framed counts as one message
			break
		}
		n++
		d = d[size:]
	}
	r.m.dropped[forward.ReasonTooManySources].Add(n)
	l.refused++
	if l.refusedLog.IsZero() || now.Sub(l.refusedLog) >= udpRefusalLogEvery {
		r.log.Warn("udp source refused", "exporter", src, "max_sources", udpMaxSources, "refused_datagrams", l.refused)
		l.refused, l.refusedLog = 0, now
	}
}

// sourceAddr decodes the sockaddr recvmmsg wrote; v4-mapped addresses of a
// dual-stack socket are unmapped so an exporter has one key.
func sourceAddr(b *[unix.SizeofSockaddrInet6]byte, n uint32) netip.AddrPort {
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		if n >= unix.SizeofSockaddrInet6 {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port)
		}
	}
	return netip.AddrPort{}
}

// housekeeping removes sessions silent for longer than the template lifetime
// and expired templates (RFC 7011 §8.4), and counts the kernel's drops.
func (l *udpLoop) housekeeping(now time.Time) {
	r := l.r
	l.lastHK = now
	lifetime := r.cfg.TemplateLifetime
	changed := false
	for src, s := range l.byAddr {
		if lifetime > 0 && now.Sub(s.lastSeen) > lifetime {
			delete(l.byAddr, src)
			delete(r.sessions, s)
			r.endSession(s)
			if l.last == s {
				l.last = nil
			}
			changed = true
			r.log.Debug("exporter expired", "exporter", src, "idle", now.Sub(s.lastSeen).Round(time.Second))
			continue
		}
		if s.templates.Expire(now) > 0 {
			changed = true
		}
	}
	if changed {
		r.m.sessions.Store(int64(len(l.byAddr)))
		r.updateTemplateGauge()
	}
	if l.fd >= 0 {
		if drops, ok := socketDrops(l.fd); ok {
			if d := drops - l.drops; d > 0 {
				l.kdropped.Add(int(d))
			}
			l.drops = drops
		}
	}
}

// socketDrops reads the socket's drop counter (SO_MEMINFO): datagrams lost
// because the receive buffer was full.
func socketDrops(fd int) (uint32, bool) {
	var mi [skMeminfoVars]uint32
	n := uint32(unsafe.Sizeof(mi))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 || n < (skMeminfoDrops+1)*4 {
		return 0, false
	}
	return mi[skMeminfoDrops], true
}

// drain reads what the kernel already holds (those datagrams were sent to us),
// closes the socket, then serves tasks until the outputs have written what they
// hold or ShutdownTimeout passes, and stops them.
func (l *udpLoop) drain() {
	r := l.r
	start := time.Now()
	deadline := start.Add(r.opts.ShutdownTimeout)
	r.log.Info("receiver stopping", "shutdown_timeout", r.opts.ShutdownTimeout)
	for l.fd >= 0 && time.Now().Before(deadline) {
		n, _ := l.recv()
		if n <= 0 {
			break
		}
		l.handle(n)
	}
	l.closeSocket()
	r.flush()
	for r.pendingBytes() > 0 {
		if !time.Now().Before(deadline) {
			r.log.Warn("shutdown deadline reached with data still queued")
			break
		}
		_ = l.wait(10)
		l.runTasks()
	}
	for _, o := range r.outputs {
		o.Stop()
	}
	r.finishRetiringAll()
	r.waitRetired(deadline)
	r.log.Info("receiver stopped", "took", time.Since(start).Round(time.Millisecond))
}

func (l *udpLoop) closeSocket() {
	if l.fd >= 0 {
		if drops, ok := socketDrops(l.fd); ok && drops != l.drops {
			l.kdropped.Add(int(drops - l.drops))
		}
		_ = unix.Close(l.fd)
		l.fd = -1
	}
}

// runTasks runs what Execute queued, in order.
func (l *udpLoop) runTasks() {
	l.mu.Lock()
	l.run, l.tasks = l.tasks, l.run[:0]
	l.hasTasks.Store(false)
	l.mu.Unlock()
	for i, fn := range l.run {
		fn()
		l.run[i] = nil
	}
}

// wake interrupts poll. Under mu, so that it never writes to a closed (and
// possibly reused) descriptor.
func (l *udpLoop) wake() {
	l.mu.Lock()
	if !l.ended {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(l.efd, one[:])
	}
	l.mu.Unlock()
}

// end releases the loop's descriptors; later tasks are dropped.
func (l *udpLoop) end() {
	l.closeSocket()
	l.mu.Lock()
	l.ended = true
	l.tasks = nil
	_ = unix.Close(l.efd)
	l.mu.Unlock()
	close(l.endCh)
}

// Execute runs runnable on the loop between two batches; it is dropped once the
// loop has ended. Safe for concurrent use.
func (l *udpLoop) Execute(ctx context.Context, runnable gnet.Runnable) error {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return errClosed
	}
	l.tasks = append(l.tasks, func() { _ = runnable.Run(ctx) })
	l.hasTasks.Store(true)
	l.mu.Unlock()
	l.wake()
	return nil
}

func (l *udpLoop) Register(context.Context, net.Addr) (<-chan gnet.RegisteredResult, error) {
	return nil, errUDPLoop
}

func (l *udpLoop) Enroll(context.Context, net.Conn) (<-chan gnet.RegisteredResult, error) {
	return nil, errUDPLoop
}

func (l *udpLoop) Schedule(context.Context, gnet.Runnable, time.Duration) error { return errUDPLoop }

func (l *udpLoop) Close(gnet.Conn) error { return errUDPLoop }
