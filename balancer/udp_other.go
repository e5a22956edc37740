//go:build !linux

package balancer

import (
	"context"
	"errors"
)

// errUDPNeedsLinux: UDP receivers use recvmmsg (and UDP subreceivers sendmmsg:
// forward.NewUDP refuses likewise).
var errUDPNeedsLinux = errors.New("udp needs linux (recvmmsg, sendmmsg)")

func (r *Receiver) runUDP(context.Context) error { return errUDPNeedsLinux }

func (r *Receiver) setUDPReadBuffer(int) {}
