package balancer

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// inherit gives a UDP receiver the socket of its predecessor (before Run), with
// the templates of each exporter address it knew: datagrams the kernel queued
// during the switch are read by us, none is lost.
func (r *Receiver) inherit(file *os.File, sources map[string][]byte) {
	r.inheritedUDP = file
	r.inheritedSources = sources
}

// udpSocket returns the receiver's socket: the inherited one, or a new binding.
func (r *Receiver) udpSocket() (int, error) {
	if f := r.inheritedUDP; f != nil {
		r.inheritedUDP = nil
		fd, err := unix.Dup(int(f.Fd()))
		_ = f.Close()
		if err != nil {
			return -1, fmt.Errorf("inherited socket: %w", err)
		}
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			_ = unix.Close(fd)
			return -1, fmt.Errorf("inherited socket: %w", err)
		}
		return fd, nil
	}
	return listenUDP(r.cfg.Listen)
}

// adoptSources learns the templates the predecessor knew per exporter address and
// sends them to every output. Loop goroutine only.
func (l *udpLoop) adoptSources(sources map[string][]byte) {
	now := l.r.opts.Now()
	for src, tmpl := range sources {
		ap, err := netip.ParseAddrPort(src)
		if err != nil {
			continue
		}
		s := l.session(ap, now)
		if s == nil {
			continue // over udpMaxSources: the predecessor held as many
		}
		for b := tmpl; len(b) >= 16; {
			n, err := ipfix.FrameLength(b)
			if err != nil || n == 0 {
				break
			}
			l.r.dispatch(s, b[:n])
			b = b[n:]
		}
	}
	l.r.flush()
}

// handOverUDP passes a duplicate of this UDP receiver's socket to the new
// process, with the templates of each exporter address. We keep reading it: until
// the successor says it serves (releaseUDP), both processes read the one socket,
// each datagram reaching one of them; a successor that fails meanwhile closes its
// duplicate and leaves us serving as before.
func (r *Receiver) handOverUDP(send func(handoverFrame, int) error) error {
	l, ok := r.loop.(*udpLoop)
	if !ok {
		return fmt.Errorf("receiver %s: not a udp receiver", r.name)
	}
	errc := make(chan error, 1)
	r.onLoop(func() {
		if l.fd < 0 {
			errc <- errors.New("socket already closed")
			return
		}
		sources := make(map[string][]byte, len(l.byAddr))
		for ap, s := range l.byAddr {
			sources[ap.String()] = sessionTemplates(s, r.opts.Now())
		}
		if err := send(handoverFrame{Op: "udp", Receiver: r.name, Sources: sources}, l.fd); err != nil {
			errc <- err
			return
		}
		r.log.Info("udp socket shared with the new process", "exporters", len(sources))
		errc <- nil
	})
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("receiver %s: hand-over: event loop did not answer within 10s", r.name)
	}
}

// releaseUDP stops reading the socket shared with a successor that now serves it:
// what we already read goes on to our outputs, what the kernel still queues is
// the successor's.
func (r *Receiver) releaseUDP() {
	l, ok := r.loop.(*udpLoop)
	if !ok {
		return
	}
	done := make(chan struct{})
	r.onLoop(func() {
		defer close(done)
		if l.fd >= 0 {
			l.closeSocket()
			r.log.Info("udp socket handed over")
		}
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.log.Warn("udp socket not released: event loop did not answer within 10s")
	}
}
