//go:build linux

package balancer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

const (
	// udpSendBatch is the most datagrams one sendmmsg takes (UIO_MAXIOV).
	udpSendBatch = 1024
	// udpArenaBytes bounds the re-packed copies of one batch before it is sent early.
	udpArenaBytes = 512 << 10
	// templateResend is how often a UDP subreceiver gets every current template
	// again: RFC 7011 §8.4 has UDP exporters resend templates periodically, since
	// a collector that restarted or lost the datagram has no other way to learn them.
	templateResend = 10 * time.Second
	// udpProbeUp is how long a UDP subreceiver must take datagrams without an ICMP
	// "port unreachable" (ECONNREFUSED) before it counts as up again.
	udpProbeUp      = time.Second
	ipv4UDPOverhead = 20 + 8
	ipv6UDPOverhead = 40 + 8
	minUDPPayload   = 512
)

// udpDatagram is one message of the batch: hdr is the 16-byte header with the
// sequence number rewritten, body the rest of the message. counted marks the
// exporter's messages (and the pieces they are re-packed into): template
// messages we make up are not counted as sent, as on TCP.
type udpDatagram struct {
	hdr, body []byte
	records   int32
	counted   bool
}

// udpSub is a UDP subreceiver: a connected, non-blocking UDP socket written with
// one sendmmsg per batch, one message per datagram. Messages larger than the
// MTU payload are re-packed at record boundaries with the templates of the
// session that sent them (RFC 7011 §10.3.3). There is no queue: the kernel's
// send buffer (sized by QueueBytes) is the queue, and what it refuses is dropped
// and counted. Event-loop only.
type udpSub struct {
	r       *Receiver
	addr    string
	to      netip.AddrPort
	payload int
	m       *forward.Metrics

	fd        int
	state     forward.State
	backoff   time.Duration
	downUntil time.Time
	// probing: down, but taking datagrams again to see whether the collector is
	// back (UDP has no handshake; an ICMP port unreachable is the only "no").
	probing   bool
	probeFrom time.Time

	seq        forward.Sequencer
	primed     map[uint32]bool // domains whose templates went out on this socket
	view       sessionView     // the sending session's templates by downstream id
	lastResend time.Time
	resendNow  bool
	empty      *ipfix.TemplateCache

	hdrs       []byte
	arena      []byte
	dgrams     []udpDatagram
	batchBytes int
	msgs       []unix.Mmsghdr
	iovs       []unix.Iovec
	onPiece    func(msg []byte)
}

var _ output = (*udpSub)(nil)

// newUDPSub resolves addr; the socket is opened by start.
func newUDPSub(r *Receiver, addr string, mtu int, m *forward.Metrics) (output, error) {
	to, err := netip.ParseAddrPort(addr)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, rerr
		}
		to = ua.AddrPort()
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	u := &udpSub{
		r: r, addr: addr, to: to, payload: udpPayload(to, mtu), m: m,
		fd:      -1,
		state:   forward.StateConnecting,
		backoff: forward.BackoffInitial,
		seq:     forward.NewSequencer(),
		primed:  make(map[uint32]bool),
		empty:   ipfix.NewTemplateCache(0),
		hdrs:    make([]byte, 0, ipfix.HeaderLen*udpSendBatch),
		arena:   make([]byte, 0, udpArenaBytes),
		dgrams:  make([]udpDatagram, 0, udpSendBatch),
		msgs:    make([]unix.Mmsghdr, udpSendBatch),
		iovs:    make([]unix.Iovec, 2*udpSendBatch),
	}
	u.onPiece = u.addPiece
	return u, nil
}

func (u *udpSub) Name() string { return u.addr }

// udpPayload is the largest message that fits one datagram of mtu bytes to to.
func udpPayload(to netip.AddrPort, mtu int) int {
	if mtu <= 0 {
		mtu = 1500
	}
	payload := mtu - ipv4UDPOverhead
	if to.Addr().Is6() {
		payload = mtu - ipv6UDPOverhead
	}
	return min(max(payload, minUDPPayload), ipfix.MaxMessageLen-ipv4UDPOverhead)
}

// applyConfig takes a new mtu (the next messages are cut to it) and queue
// size (the socket's send buffer). Event loop only.
func (u *udpSub) applyConfig(rc config.Receiver) {
	u.payload = udpPayload(u.to, rc.MTU)
	if u.fd >= 0 {
		setSendBuffer(u.fd, rc.QueueBytes)
	}
}

// setSendBuffer sizes a UDP subreceiver's queue, its socket's send buffer;
// SO_SNDBUFFORCE (CAP_NET_ADMIN) is not capped by net.core.wmem_max.
func setSendBuffer(fd, bytes int) {
	if bytes > 0 && unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bytes)
	}
}

func (u *udpSub) Available() bool { return u.fd >= 0 && (u.state == forward.StateUp || u.probing) }

func (u *udpSub) PendingBytes() int { return u.batchBytes }

func (u *udpSub) Start() {
	if err := u.open(); err != nil {
		u.down(time.Now(), err)
		return
	}
	u.up()
}

// open creates the connected socket. Its send buffer is the subreceiver's queue.
func (u *udpSub) open() error {
	family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(u.to.Port()), Addr: u.to.Addr().As4()})
	if u.to.Addr().Is6() {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(u.to.Port()), Addr: u.to.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	setSendBuffer(fd, u.r.cfg.QueueBytes)
	if err := unix.Connect(fd, sa); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	u.fd = fd
	return nil
}

// up marks the subreceiver up; every template goes out before the next data (a
// collector that was unreachable may have restarted).
func (u *udpSub) up() {
	if u.state == forward.StateDown {
		u.m.Reconnects.Inc()
	}
	u.state = forward.StateUp
	u.probing = false
	u.backoff = forward.BackoffInitial
	u.m.Up.Store(1)
	u.resendNow = true
	u.r.log.Info("subreceiver up", "subreceiver", u.addr, "proto", "udp", "max_message_bytes", u.payload)
}

// down routes around the subreceiver for the backoff; then flush probes it.
// A failed probe is not a state change: it is not logged again.
func (u *udpSub) down(now time.Time, err error) {
	if u.state != forward.StateDown && !u.probing {
		u.r.log.Warn("subreceiver down", "subreceiver", u.addr, "proto", "udp", "err", err)
		u.m.Up.Store(0)
	}
	u.state = forward.StateDown
	u.probing = false
	u.downUntil = now.Add(u.backoff)
	u.backoff = min(2*u.backoff, forward.BackoffMax)
}

// Send queues m as one datagram, or re-packed into several when larger than
// the path's payload.
func (u *udpSub) Send(m *forward.Message) {
	msg, odid, records := m.Bytes, m.ODID, m.Records
	if !u.Available() {
		u.m.Dropped[forward.ReasonSubreceiverDown].Inc()
		return
	}
	if len(u.dgrams) >= udpSendBatch || len(u.arena)+2*len(msg) > cap(u.arena) {
		u.sendBatch(time.Now())
	}
	if u.resendNow {
		u.resend()
	}
	if !u.primed[odid] {
		u.prime(odid)
	}
	if len(msg) <= u.payload {
		n := len(u.hdrs)
		u.hdrs = append(u.hdrs, msg[:ipfix.HeaderLen]...)
		hdr := u.hdrs[n : n+ipfix.HeaderLen]
		u.seq.Put(hdr, odid, records)
		u.dgrams = append(u.dgrams, udpDatagram{hdr: hdr, body: msg[ipfix.HeaderLen:], records: int32(records), counted: !m.MadeUp})
		u.batchBytes += len(msg)
		return
	}
	u.repack(msg, odid, records, !m.MadeUp)
}

// repack splits msg into messages that fit the MTU. Repack numbers the pieces
// from the original sequence number, so the records of each piece are the
// differences; they are then renumbered for this subreceiver.
func (u *udpSub) repack(msg []byte, odid uint32, records int, counted bool) {
	var templates ipfix.TemplateLookup = u.empty
	if u.r.cur != nil {
		// msg carries the ids downstream: see templateIDs.
		u.view.s = u.r.cur
		templates = &u.view
	}
	first := len(u.dgrams)
	err := ipfix.Repack(msg, templates, u.payload, u.onPiece)
	if err != nil && !errors.Is(err, ipfix.ErrUnknownTemplate) { // unknown ones were counted by dispatch
		u.r.countParseError(err)
	}
	pieces := u.dgrams[first:]
	if len(pieces) == 0 {
		return
	}
	base := binary.BigEndian.Uint32(pieces[0].hdr[8:12])
	for i := range pieces {
		seq := binary.BigEndian.Uint32(pieces[i].hdr[8:12])
		n := int64(records) - int64(seq-base)
		if i+1 < len(pieces) {
			n = int64(binary.BigEndian.Uint32(pieces[i+1].hdr[8:12]) - seq)
		}
		n = max(n, 0)
		pieces[i].records = int32(n)
		pieces[i].counted = counted
		u.seq.Put(pieces[i].hdr, odid, int(n))
	}
}

// addPiece copies one re-packed message (valid only during the call) into the arena.
func (u *udpSub) addPiece(msg []byte) {
	n := len(u.arena)
	u.arena = append(u.arena, msg...)
	p := u.arena[n:]
	u.dgrams = append(u.dgrams, udpDatagram{hdr: p[:ipfix.HeaderLen], body: p[ipfix.HeaderLen:]})
	u.batchBytes += len(p)
}

// prime queues the templates of domain odid of the sending session before its
// first message on this socket.
func (u *udpSub) prime(odid uint32) {
	u.primed[odid] = true
	if u.r.cur == nil {
		return
	}
	start := len(u.arena)
	u.arena = u.r.cur.templates.AppendTemplateMessages(u.arena, odid, u.r.cur.exportTime(odid, u.r.opts.Now(), nil), u.seq.At(odid), u.payload)
	u.r.cur.rewriteMessages(u.arena[start:])
	u.addMessages(start)
}

// addMessages queues the template-only messages appended to the arena from start.
func (u *udpSub) addMessages(start int) {
	for b := u.arena[start:]; len(b) >= ipfix.HeaderLen; {
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < ipfix.HeaderLen || n > len(b) {
			panic("BUG: template messages badly framed")
		}
		u.dgrams = append(u.dgrams, udpDatagram{hdr: b[:ipfix.HeaderLen], body: b[ipfix.HeaderLen:n]})
		u.batchBytes += n
		b = b[n:]
	}
}

// resend queues every current template of every session.
func (u *udpSub) resend() {
	start := len(u.arena)
	u.arena = (*host)(u.r).AppendTemplates(u.arena, &u.seq, u.payload, nil)
	u.addMessages(start)
	for s := range u.r.sessions {
		for _, odid := range s.templates.Domains() {
			u.primed[odid] = true
		}
	}
	u.lastResend = time.Now()
	u.resendNow = false
}

func (u *udpSub) Flush() {
	if len(u.dgrams) == 0 && u.state == forward.StateUp {
		return
	}
	now := time.Now()
	if u.state == forward.StateDown && !u.probing {
		if now.Before(u.downUntil) {
			return
		}
		if u.fd < 0 {
			if err := u.open(); err != nil {
				u.down(now, err)
				return
			}
		}
		u.probing = true
		u.probeFrom = now
		clear(u.primed)
		u.resendNow = true
		return
	}
	if len(u.dgrams) == 0 {
		return
	}
	u.sendBatch(now)
	if u.probing && now.Sub(u.probeFrom) >= udpProbeUp {
		u.up()
	}
	if now.Sub(u.lastResend) >= templateResend {
		u.resendNow = true
	}
}

// sendBatch writes the batch with sendmmsg; what the socket refuses is dropped.
func (u *udpSub) sendBatch(now time.Time) {
	m := u.m
	for done := 0; done < len(u.dgrams); {
		chunk := u.dgrams[done:min(len(u.dgrams), done+udpSendBatch)]
		for i := range chunk {
			d := &chunk[i]
			iov := u.iovs[2*i : 2*i+2]
			iov[0].Base = &d.hdr[0]
			iov[0].SetLen(len(d.hdr))
			h := &u.msgs[i].Hdr
			h.Iov = &iov[0]
			if len(d.body) > 0 {
				iov[1].Base = &d.body[0]
				iov[1].SetLen(len(d.body))
				h.SetIovlen(2)
			} else {
				h.SetIovlen(1)
			}
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.msgs[0])), // raw: see forward.IOVWriter.write
			uintptr(len(chunk)), unix.MSG_DONTWAIT, 0, 0)
		clear(u.iovs[:2*len(chunk)]) // do not keep the receive buffers reachable
		if errno == 0 {
			for _, d := range chunk[:n] {
				if !d.counted {
					continue
				}
				m.BatchMessages++
				m.BatchBytes += len(d.hdr) + len(d.body)
				m.BatchRecords += int(d.records)
			}
			done += int(n)
			continue
		}
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			// The send buffer is full: the rest of the batch is lost.
			m.Dropped[forward.ReasonSendError].Add(countedIn(u.dgrams[done:]))
			done = len(u.dgrams)
		case unix.ECONNREFUSED:
			// ICMP port unreachable from an earlier datagram: nobody listens there.
			m.Dropped[forward.ReasonSubreceiverDown].Add(countedIn(u.dgrams[done:]))
			done = len(u.dgrams)
			u.down(now, errno)
		default:
			m.Dropped[forward.ReasonSendError].Add(countedIn(u.dgrams[done : done+1]))
			done++
		}
	}
	m.Publish()
	clear(u.dgrams)
	u.dgrams = u.dgrams[:0]
	u.hdrs = u.hdrs[:0]
	u.arena = u.arena[:0]
	u.batchBytes = 0
}

// countedIn is how many of ds are the exporter's (neither sent nor dropped
// counts the others).
func countedIn(ds []udpDatagram) int {
	n := 0
	for _, d := range ds {
		if d.counted {
			n++
		}
	}
	return n
}

func (u *udpSub) Stop() {
	if u.fd >= 0 {
		_ = unix.Close(u.fd)
		u.fd = -1
	}
	u.m.Up.Store(0)
}
