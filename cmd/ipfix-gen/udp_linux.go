package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpOutput sends one message per datagram on a connected socket, many
// datagrams per sendmmsg(2) call.
type udpOutput struct {
	conn    *net.UDPConn
	rc      syscall.RawConn
	max     int
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec
	refused int64
}

// sendmmsgMax is the kernel's limit on datagrams per call (UIO_MAXIOV).
const sendmmsgMax = 1024

func newUDPOutput(addr string, mtu int) (*udpOutput, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UDPConn)
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	// A big send buffer absorbs bursts of a paced run.
	_ = conn.SetWriteBuffer(4 << 20)
	remote := conn.RemoteAddr().(*net.UDPAddr)
	u := &udpOutput{conn: conn, rc: rc, max: maxDatagram(mtu, remote.IP.To4() == nil)}
	slog.Info("sending", "to", addr, "max_datagram", u.max)
	return u, nil
}

func (u *udpOutput) maxMessage() int { return u.max }

func (u *udpOutput) send(ctx context.Context, b *batch, st *stats) error {
	n := len(b.ends)
	if cap(u.hdrs) < n {
		u.hdrs = make([]unix.Mmsghdr, n)
		u.iovs = make([]unix.Iovec, n)
	}
	hdrs, iovs := u.hdrs[:n], u.iovs[:n]
	start := 0
	for i, end := range b.ends {
		iovs[i].Base = &b.buf[start]
		iovs[i].SetLen(end - start)
		hdrs[i] = unix.Mmsghdr{}
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
		start = end
	}
	sent, refusals := 0, 0
	var serr error
	err := u.rc.Write(func(fd uintptr) bool {
		for sent < n {
			k := min(n-sent, sendmmsgMax)
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[sent])), uintptr(k), 0, 0, 0)
			switch {
			case e == unix.EAGAIN:
				return false // wait until writable
			case e == unix.ECONNREFUSED:
				// An ICMP port unreachable for an earlier datagram: nobody
				// listens (yet). UDP goes on; the error is reported once.
				if u.refused == 0 {
					slog.Warn("collector refused datagrams", "to", u.conn.RemoteAddr().String())
				}
				u.refused++
				if refusals++; refusals > n+16 {
					serr = e
					return true
				}
			case e != 0:
				serr = e
				return true
			default:
				sent += int(r)
			}
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) && ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("sendmmsg to %s: %w", u.conn.RemoteAddr(), err)
	}
	count(st, b)
	return nil
}

func (u *udpOutput) close() error { return u.conn.Close() }
