//go:build !linux

package main

import (
	"context"
	"net"
)

// udpOutput sends one message per datagram on a connected socket.
type udpOutput struct {
	conn *net.UDPConn
	max  int
}

func newUDPOutput(addr string, mtu int) (*udpOutput, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UDPConn)
	_ = conn.SetWriteBuffer(4 << 20)
	remote := conn.RemoteAddr().(*net.UDPAddr)
	return &udpOutput{conn: conn, max: maxDatagram(mtu, remote.IP.To4() == nil)}, nil
}

func (u *udpOutput) maxMessage() int { return u.max }

func (u *udpOutput) send(_ context.Context, b *batch, st *stats) error {
	start := 0
	for _, end := range b.ends {
		if _, err := u.conn.Write(b.buf[start:end]); err != nil {
			return err
		}
		start = end
	}
	count(st, b)
	return nil
}

func (u *udpOutput) close() error { return u.conn.Close() }
