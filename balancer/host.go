package balancer

import (
	"context"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
)

// host is a Receiver as its subreceivers see it (forward.Host and
// forward.LoopHost): the same value, with no method added to Receiver's API.
type host Receiver

var _ forward.LoopHost = (*host)(nil)

// OnLoop runs fn on the receiver's event loop.
func (h *host) OnLoop(fn func()) { (*Receiver)(h).onLoop(fn) }

// ReplayBringsTemplates: while a RoundRobin receiver's spool replays, every
// subreceiver gets the replay's templates before its first replayed message
// (replayTo) and the current ones once the replay caught up.
func (h *host) ReplayBringsTemplates() bool { return (*Receiver)(h).rrs.behind() }

// Context ends when the receiver stops.
func (h *host) Context() context.Context { return h.ctx }

// Enroll puts a subreceiver's connection on the receiver's event loop; OnOpen
// and OnClose find the subreceiver in its context.
func (h *host) Enroll(c net.Conn, sub *forward.TCPOnLoop) error {
	_, err := h.loop.Enroll(gnet.NewContext(h.ctx, sub), c)
	return err
}

var _ forward.UDPHost = (*host)(nil)

// Sender is the session whose message the outputs are being given (nil for
// none), for a UDP subreceiver's re-packing and priming.
func (h *host) Sender() forward.Session {
	if h.cur == nil {
		return nil
	}
	return h.cur
}

// AppendDomains appends the observation domains of every live session.
func (h *host) AppendDomains(dst []uint32) []uint32 {
	for s := range h.sessions {
		dst = append(dst, s.templates.Domains()...)
	}
	return dst
}

// CountParseError counts a message an output found malformed.
func (h *host) CountParseError(err error) { (*Receiver)(h).countParseError(err) }

// Now is the receiver's clock (Options.Now).
func (h *host) Now() time.Time { return h.opts.Now() }

// newUDPSub is a UDP subreceiver of r to addr.
func newUDPSub(r *Receiver, addr string, mtu int, m *forward.Metrics) (output, error) {
	u, err := forward.NewUDP((*host)(r), addr, mtu, r.cfg.QueueBytes, m, r.log)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// onLoop runs fn on the receiver's event loop.
func (r *Receiver) onLoop(fn func()) {
	_ = r.loop.Execute(r.ctx, gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}
