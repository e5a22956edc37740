//go:build !linux

package balancer

import (
	"context"
	"errors"
	"os"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
)

// errUDPNeedsLinux: UDP receivers and subreceivers use recvmmsg/sendmmsg.
var errUDPNeedsLinux = errors.New("udp needs linux (recvmmsg, sendmmsg)")

func (r *Receiver) runUDP(context.Context) error { return errUDPNeedsLinux }

func newUDPSub(*Receiver, string, int, *forward.Metrics) (output, error) {
	return nil, errUDPNeedsLinux
}

func (r *Receiver) setUDPReadBuffer(int) {}

func (r *Receiver) inherit(f *os.File, _ map[string][]byte) { _ = f.Close() }

func (r *Receiver) handOverUDP(func(handoverFrame, int) error) error { return errUDPNeedsLinux }

func (r *Receiver) releaseUDP() {}
