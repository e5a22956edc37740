//go:build !linux

package balancer

import (
	"context"
	"errors"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
)

// errUDPNeedsLinux: UDP receivers and subreceivers use recvmmsg/sendmmsg.
var errUDPNeedsLinux = errors.New("udp needs linux (recvmmsg, sendmmsg)")

func (r *Receiver) runUDP(context.Context) error { return errUDPNeedsLinux }

func newUDPSub(*Receiver, string, int, *forward.Metrics) (output, error) {
	return nil, errUDPNeedsLinux
}

func (r *Receiver) setUDPReadBuffer(int) {}

// udpSub never exists off Linux (newUDPSub refuses); the type is declared so
// that the places telling UDP subreceivers apart build everywhere.
type udpSub struct{ forward.Output }
