//go:build !linux

package forward

import (
	"errors"
	"log/slog"
)

// errUDPNeedsLinux: a UDP subreceiver writes with sendmmsg.
var errUDPNeedsLinux = errors.New("udp subreceiver needs linux (sendmmsg)")

// UDP never exists off Linux (NewUDP refuses); the type is declared so that
// the places telling UDP subreceivers apart build everywhere.
type UDP struct{ Output }

// NewUDP refuses: see errUDPNeedsLinux.
func NewUDP(UDPHost, string, int, int, *Metrics, *slog.Logger) (*UDP, error) {
	return nil, errUDPNeedsLinux
}
