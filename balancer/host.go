package balancer

import (
	"context"
	"net"

	"github.com/panjf2000/gnet/v2"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
)

// host is a Receiver as its subreceivers see it (forward.Host and
// forward.LoopHost): the same value, with no method added to Receiver's API.
type host Receiver

var _ forward.LoopHost = (*host)(nil)

// OnLoop runs fn on the receiver's event loop.
func (h *host) OnLoop(fn func()) { (*Receiver)(h).onLoop(fn) }

// Context ends when the receiver stops.
func (h *host) Context() context.Context { return h.ctx }

// Enroll puts a subreceiver's connection on the receiver's event loop; OnOpen
// and OnClose find the subreceiver in its context.
func (h *host) Enroll(c net.Conn, sub *forward.TCPOnLoop) error {
	_, err := h.loop.Enroll(gnet.NewContext(h.ctx, sub), c)
	return err
}

// onLoop runs fn on the receiver's event loop.
func (r *Receiver) onLoop(fn func()) {
	_ = r.loop.Execute(r.ctx, gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}
