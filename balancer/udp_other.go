//go:build !linux

package balancer

import (
	"context"
	"errors"
)

// errUDPNeedsLinux: UDP receivers and subreceivers use recvmmsg/sendmmsg.
var errUDPNeedsLinux = errors.New("udp needs linux (recvmmsg, sendmmsg)")

func (r *Receiver) runUDP(context.Context) error { return errUDPNeedsLinux }

func newUDPSub(*Receiver, string, int, *outputMetrics) (output, error) {
	return nil, errUDPNeedsLinux
}
