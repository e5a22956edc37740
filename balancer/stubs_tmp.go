package balancer

import (
	"context"
	"errors"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// TEMPORARY: replaced by udp_linux.go, stream.go and recording.go.
func newUDPSub(r *Receiver, addr string, mtu int, m *outputMetrics) (output, error) {
	return nil, errors.New("udp subreceivers: not yet")
}
func newStreamSub(r *Receiver, addr string, hwm int, m *outputMetrics) output { return nil }
func newRecorder(r *Receiver, cfg config.Recorder) (output, error) {
	return nil, errors.New("recording: not yet")
}
func (r *Receiver) runUDP(ctx context.Context) error { return errors.New("udp: not yet") }
