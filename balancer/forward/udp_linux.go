//go:build linux

package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
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

// UDP is a UDP subreceiver: a connected, non-blocking UDP socket written with
// one sendmmsg per batch, one message per datagram. Messages larger than the
// MTU payload are re-packed at record boundaries with the templates of the
// session that sent them (RFC 7011 §10.3.3; UDPHost.Sender). There is no
// queue: the kernel's send buffer (sized by queue_bytes) is the queue, and what
// it refuses is dropped and counted. Event-loop only.
type UDP struct {
	host    UDPHost
	log     *slog.Logger
	addr    string
	to      netip.AddrPort
	payload int
	sndbuf  int
	m       *Metrics

	fd        int
	state     State
	backoff   time.Duration
	downUntil time.Time
	// probing: down, but taking datagrams again to see whether the collector is
	// back (UDP has no handshake; an ICMP port unreachable is the only "no").
	probing   bool
	probeFrom time.Time

	seq        Sequencer
	primed     map[uint32]bool // domains whose templates went out on this socket
	domains    []uint32        // scratch for resend
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

var _ Output = (*UDP)(nil)

// NewUDP resolves addr; the socket is opened by Start. Messages are cut to
// mtu; queueBytes sizes the socket's send buffer.
func NewUDP(host UDPHost, addr string, mtu, queueBytes int, m *Metrics, log *slog.Logger) (*UDP, error) {
	to, err := netip.ParseAddrPort(addr)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, rerr
		}
		to = ua.AddrPort()
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	u := &UDP{
		host: host, log: log, addr: addr, to: to, payload: udpPayload(to, mtu), sndbuf: queueBytes, m: m,
		fd:      -1,
		state:   StateConnecting,
		backoff: BackoffInitial,
		seq:     NewSequencer(),
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

func (u *UDP) Name() string { return u.addr }

// SetMTU cuts the next messages to a new mtu (a reload). Event loop only.
func (u *UDP) SetMTU(mtu int) { u.payload = udpPayload(u.to, mtu) }

// SetQueueBytes resizes the queue, the socket's send buffer (a reload). Event
// loop only.
func (u *UDP) SetQueueBytes(n int) {
	u.sndbuf = n
	if u.fd >= 0 {
		setSendBuffer(u.fd, n)
	}
}

// setSendBuffer sizes a UDP subreceiver's queue, its socket's send buffer;
// SO_SNDBUFFORCE (CAP_NET_ADMIN) is not capped by net.core.wmem_max.
func setSendBuffer(fd, bytes int) {
	if bytes > 0 && unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bytes)
	}
}

func (u *UDP) Available() bool { return u.fd >= 0 && (u.state == StateUp || u.probing) }

func (u *UDP) PendingBytes() int { return u.batchBytes }

func (u *UDP) Start() {
	if err := u.open(); err != nil {
		u.down(time.Now(), err)
		return
	}
	u.up()
}

// open creates the connected socket. Its send buffer is the subreceiver's queue.
func (u *UDP) open() error {
	family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(u.to.Port()), Addr: u.to.Addr().As4()})
	if u.to.Addr().Is6() {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(u.to.Port()), Addr: u.to.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	setSendBuffer(fd, u.sndbuf)
	if err := unix.Connect(fd, sa); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	u.fd = fd
	return nil
}

// up marks the subreceiver up; every template goes out before the next data (a
// collector that was unreachable may have restarted).
func (u *UDP) up() {
	if u.state == StateDown {
		u.m.Reconnects.Inc()
	}
	u.state = StateUp
	u.probing = false
	u.backoff = BackoffInitial
	u.m.Up.Store(1)
	u.resendNow = true
	u.log.Info("subreceiver up", "subreceiver", u.addr, "proto", "udp", "max_message_bytes", u.payload)
}

// down routes around the subreceiver for the backoff; then flush probes it.
// A failed probe is not a state change: it is not logged again.
func (u *UDP) down(now time.Time, err error) {
	if u.state != StateDown && !u.probing {
		u.log.Warn("subreceiver down", "subreceiver", u.addr, "proto", "udp", "err", err)
		u.m.Up.Store(0)
	}
	u.state = StateDown
	u.probing = false
	u.downUntil = now.Add(u.backoff)
	u.backoff = min(2*u.backoff, BackoffMax)
}

// Send queues m as one datagram, or re-packed into several when larger than
// the path's payload.
func (u *UDP) Send(m *Message) {
	msg, odid, records := m.Bytes, m.ODID, m.Records
	if !u.Available() {
		u.m.Dropped[ReasonSubreceiverDown].Inc()
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
func (u *UDP) repack(msg []byte, odid uint32, records int, counted bool) {
	var templates ipfix.TemplateLookup = u.empty
	if s := u.host.Sender(); s != nil {
		templates = s // msg carries the IDs downstream, as s looks them up
	}
	first := len(u.dgrams)
	err := ipfix.Repack(msg, templates, u.payload, u.onPiece)
	if err != nil && !errors.Is(err, ipfix.ErrUnknownTemplate) { // unknown ones were counted by dispatch
		u.host.CountParseError(err)
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
func (u *UDP) addPiece(msg []byte) {
	n := len(u.arena)
	u.arena = append(u.arena, msg...)
	p := u.arena[n:]
	u.dgrams = append(u.dgrams, udpDatagram{hdr: p[:ipfix.HeaderLen], body: p[ipfix.HeaderLen:]})
	u.batchBytes += len(p)
}

// prime queues the templates of domain odid of the sending session before its
// first message on this socket.
func (u *UDP) prime(odid uint32) {
	u.primed[odid] = true
	s := u.host.Sender()
	if s == nil {
		return
	}
	start := len(u.arena)
	u.arena = s.AppendTemplateMessages(u.arena, odid, u.seq.At(odid), u.payload, u.host.Now())
	u.addMessages(start)
}

// addMessages queues the template-only messages appended to the arena from start.
func (u *UDP) addMessages(start int) {
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
func (u *UDP) resend() {
	start := len(u.arena)
	u.arena = u.host.AppendTemplates(u.arena, &u.seq, u.payload, nil)
	u.addMessages(start)
	u.domains = u.host.AppendDomains(u.domains[:0])
	for _, odid := range u.domains {
		u.primed[odid] = true
	}
	u.lastResend = time.Now()
	u.resendNow = false
}

func (u *UDP) Flush() {
	if len(u.dgrams) == 0 && u.state == StateUp {
		return
	}
	now := time.Now()
	if u.state == StateDown && !u.probing {
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
func (u *UDP) sendBatch(now time.Time) {
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
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.msgs[0])), // raw: see IOVWriter.write
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
			m.Dropped[ReasonSendError].Add(countedIn(u.dgrams[done:]))
			done = len(u.dgrams)
		case unix.ECONNREFUSED:
			// ICMP port unreachable from an earlier datagram: nobody listens there.
			m.Dropped[ReasonSubreceiverDown].Add(countedIn(u.dgrams[done:]))
			done = len(u.dgrams)
			u.down(now, errno)
		default:
			m.Dropped[ReasonSendError].Add(countedIn(u.dgrams[done : done+1]))
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

func (u *UDP) Stop() {
	if u.fd >= 0 {
		_ = unix.Close(u.fd)
		u.fd = -1
	}
	u.m.Up.Store(0)
}
