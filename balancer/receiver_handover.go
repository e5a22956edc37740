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
// queue a connection on our listener until it closes). Runs the passing on the loop
// so no read happens in between.
func (r *Receiver) handOverSessions(send func(handoverFrame, int) error) error {
	errc := make(chan error, 1)
	r.onLoop(func() {
		r.passOn = send
		var errs []error
		for s, c := range r.sessions {
			if err := r.passSession(s, c, false); err != nil {
				errs = append(errs, err)
			}
		}
		errc <- errors.Join(errs...)
	})
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("receiver %s: hand-over: event loop did not answer within 10s", r.name)
	}
}

// passSession sends a dup of the session's socket with its carry and templates,
// then closes our fd: the dup keeps the socket open, so the DPI sees nothing.
// Event loop only.
// late marks a connection accepted after the hand-over (from the accept queue, or
// before our listener stopped completing handshakes).
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
	_ = c.Close()
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

// adopted registers a handed-over session on the loop (from OnOpen).
func (r *Receiver) adopted(s *session, c gnet.Conn) {
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
}
