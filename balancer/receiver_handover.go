package balancer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// handOverSessions passes every exporter session of this TCP receiver to the new
// process, and from now on every session it accepts too (the kernel may still
// queue a connection on our listener until it closes).
//
// Each session is passed from its own OnTraffic (woken for it), which then
// returns gnet.Close: gnet closes our fd and drops it from its poller at once,
// before its loop can read again. (Conn.Close would only queue the close: the
// loop could read bytes of the successor's meanwhile.)
func (r *Receiver) handOverSessions(send func(handoverFrame, int) error) error {
	type waiting struct {
		n   int
		res chan error
	}
	wc := make(chan waiting, 1)
	r.onLoop(func() {
		r.passOn = send
		res := make(chan error, len(r.sessions))
		for s, c := range r.sessions {
			if s.passed || s.passing {
				continue
			}
			s.passing, s.passResult = true, res
			if err := c.Wake(nil); err != nil {
				s.passing = false
				res <- fmt.Errorf("exporter %s: wake: %w", s.remote, err)
			}
		}
		wc <- waiting{n: cap(res), res: res}
	})
	var w waiting
	deadline := time.After(10 * time.Second)
	select {
	case w = <-wc:
	case <-deadline:
		return fmt.Errorf("receiver %s: hand-over: event loop did not answer within 10s", r.name)
	}
	var errs []error
	for range w.n {
		select {
		case err := <-w.res:
			errs = append(errs, err)
		case <-deadline:
			return fmt.Errorf("receiver %s: hand-over: sessions not passed within 10s", r.name)
		}
	}
	return errors.Join(errs...)
}

// passWoken passes a session a hand-over woke, after the read that came with the
// wake-up (complete messages are ours to forward, a partial one is the carry).
// Event loop only.
func (r *Receiver) passWoken(s *session, c gnet.Conn) gnet.Action {
	if action := r.onTraffic(s, c); action != gnet.None {
		return action // the stream lost framing: the session ends here (OnClose reports)
	}
	err := r.passSession(s, c, false)
	r.passReport(s, err)
	if err != nil {
		return gnet.None // we still own it and serve it
	}
	return gnet.Close
}

// passReport tells the hand-over waiting for s how its pass ended. Event loop only.
func (r *Receiver) passReport(s *session, err error) {
	if s.passing {
		s.passing = false
		s.passResult <- err
		s.passResult = nil
	}
}

// passSession sends a dup of the session's socket with its carry and templates.
// The caller then makes gnet close our fd (returns gnet.Close): the dup keeps the
// socket open, so the DPI sees nothing. late marks a connection accepted after
// the hand-over (from the accept queue, or before our listener stopped
// completing handshakes). Event loop only.
func (r *Receiver) passSession(s *session, c gnet.Conn, late bool) error {
	fd, err := c.Dup()
	if err != nil {
		return fmt.Errorf("exporter %s: dup: %w", s.remote, err)
	}
	defer unix.Close(fd)
	f := handoverFrame{Op: "session", Receiver: r.name, Remote: s.remote.String(), Carry: s.carry, Templates: sessionTemplates(s, r.opts.Now())}
	if err := r.passOn(f, fd); err != nil {
		// We still own the session and keep serving it.
		return fmt.Errorf("exporter %s: %w", s.remote, err)
	}
	s.carry = nil
	s.passed = true
	if late {
		r.m.handedOverLate.Inc()
		r.log.Info("exporter session accepted after the hand-over, passed on", "exporter", s.remote)
	} else {
		r.m.handedOver.Inc()
		r.log.Info("exporter session handed over", "exporter", s.remote)
	}
	return nil
}

// sessionTemplates is every current template of s as messages, at the session's
// export time: the successor sends them on as the exporter's own.
func sessionTemplates(s *session, now time.Time) []byte {
	var b []byte
	for _, odid := range s.templates.Domains() {
		b = s.templates.AppendTemplateMessages(b, odid, s.exportTime(odid, now, nil), 0, ipfix.MaxMessageLen)
	}
	return b
}

// adopt takes an exporter session handed over by the predecessor: the socket goes
// on our loop with its carry, and its templates are learned and sent to every
// output before its first data (see OnOpen).
func (r *Receiver) adopt(f handoverFrame, file *os.File) error {
	conn, err := net.FileConn(file)
	_ = file.Close()
	if err != nil {
		return err
	}
	remote, _ := netip.ParseAddrPort(f.Remote)
	s := newSession(remote, 0)
	s.carry = f.Carry
	s.adopted = f.Templates
	if s.adopted == nil {
		s.adopted = []byte{}
	}
	ch, err := r.loop.Enroll(gnet.NewContext(r.ctx, s), conn)
	if err != nil {
		_ = conn.Close()
		return err
	}
	select {
	case res := <-ch:
		return res.Err
	case <-time.After(5 * time.Second):
		return errors.New("enroll: no answer within 5s")
	}
}

// adopted registers a handed-over session on the loop (from OnOpen). When we
// have handed over ourselves meanwhile (a late session of our predecessor's that
// arrived after that), it is passed on at once, as a connection we accept then:
// the caller returns gnet.Close when it reports true.
func (r *Receiver) adopted(s *session, c gnet.Conn) (passed bool) {
	r.sessions[s] = c
	r.m.sessions.Store(int64(len(r.sessions)))
	r.m.sessionsTotal.Inc()
	for b := s.adopted; len(b) >= ipfix.HeaderLen; {
		n, err := ipfix.FrameLength(b)
		if err != nil || n == 0 {
			break
		}
		r.dispatch(s, b[:n])
		b = b[n:]
	}
	r.flush()
	s.adopted = nil
	r.log.Info("exporter session taken over", "exporter", s.remote, "carry_bytes", len(s.carry), "templates", s.templates.Len())
	if r.passOn == nil {
		return false
	}
	if err := r.passSession(s, c, true); err != nil {
		r.log.Warn("cannot hand over adopted exporter session", "exporter", s.remote, "err", err)
		return false
	}
	return true
}
