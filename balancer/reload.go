package balancer

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// outputKey names a subreceiver or re-export target across reloads.
func outputKey(t config.Subreceiver) string { return t.Proto.String() + " " + t.Addr }

// liveOutput is implemented by outputs whose settings a reload changes in place
// (queue_bytes, mtu). Event loop only.
type liveOutput interface{ applyConfig(rc config.Receiver) }

// queueSizer is implemented by the subreceivers of balancer/forward whose
// high-water mark (queue_bytes) a reload changes in place. Event loop only.
type queueSizer interface{ SetQueueBytes(hwm int) }

// checkReconfigure reports what would make Reconfigure fail, changing nothing.
func (r *Receiver) checkReconfigure(rc config.Receiver) error {
	if rc.Listen != r.cfg.Listen || rc.Proto != r.cfg.Proto {
		return errors.New("listen address or protocol changed: the receiver must be restarted")
	}
	return nil
}

// Reconfigure applies rc to the running receiver on its event loop: the exporters'
// connections and the template caches stay; subreceivers that remain keep their
// connection, new ones connect and get every template before data, removed ones
// stop receiving at once and are closed once drained (bounded by ShutdownTimeout).
func (r *Receiver) Reconfigure(rc config.Receiver) error {
	if err := r.checkReconfigure(rc); err != nil {
		return err
	}
	errc := make(chan error, 1)
	r.onLoop(func() { errc <- r.reconfigure(rc) })
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("receiver %s: reconfigure: event loop did not answer within 10s", r.name)
	}
}

func (r *Receiver) reconfigure(rc config.Receiver) error {
	old := make(map[string]output, len(r.outputs))
	for _, o := range r.outputs {
		old[r.outputKeys[o]] = o
	}
	var next []output
	var started []output
	if rc.Mode == config.Recording {
		prev := old[recorderKey]
		if prev != nil && r.cfg.Mode == config.Recording && sameRecording(r.cfg.Recording, rc.Recording) {
			next = append(next, prev)
			delete(old, recorderKey)
		} else {
			rec, err := newRecorder(r, rc.Recording)
			if err != nil {
				return fmt.Errorf("receiver %s: %w", r.name, err)
			}
			r.outputKeys[rec] = recorderKey
			next = append(next, rec)
			started = append(started, rec)
		}
	}
	targets := rc.Subreceivers
	if rc.Mode == config.Recording {
		targets = rc.Recording.Export
	}
	for _, t := range targets {
		key := outputKey(t)
		if o, ok := old[key]; ok {
			switch l := o.(type) {
			case liveOutput:
				l.applyConfig(rc)
			case queueSizer:
				l.SetQueueBytes(rc.QueueBytes)
			}
			next = append(next, o)
			delete(old, key)
			continue
		}
		// Built with the new settings (queue_bytes, spool).
		cur := r.cfg
		r.cfg = rc
		o, err := r.newSubreceiver(t)
		r.cfg = cur
		if err != nil {
			for _, s := range started {
				s.Stop()
			}
			return fmt.Errorf("receiver %s: subreceiver %s: %w", r.name, t.Addr, err)
		}
		next = append(next, o)
		started = append(started, o)
	}
	prev := r.cfg
	r.cfg = rc
	r.applyReceiverConfig(prev)
	if rc.Spool != prev.Spool {
		r.setSpoolLimits(rc)
	}
	r.outputs = next
	r.rr = len(next) - 1
	for _, o := range started {
		o.Start()
		r.log.Info("output added", "output", r.outputKeys[o])
	}
	for key, o := range old {
		r.log.Info("output removed, draining", "output", key)
		r.retire(o, time.Now().Add(r.opts.ShutdownTimeout))
	}
	return nil
}

// applyReceiverConfig applies in place what changed in the receiver's own
// settings since prev: the loop's CPUs, the UDP socket's read buffer, the
// lifetime of the templates UDP exporters sent. Event loop only.
func (r *Receiver) applyReceiverConfig(prev config.Receiver) {
	rc := r.cfg
	if !reflect.DeepEqual(prev.CPU, rc.CPU) {
		r.repin()
	}
	if rc.Proto == config.UDP && rc.UDPReadBuffer != prev.UDPReadBuffer {
		r.setUDPReadBuffer(rc.UDPReadBuffer)
	}
	if rc.TemplateLifetime != prev.TemplateLifetime {
		now := r.opts.Now()
		for s, c := range r.sessions {
			if c == nil { // UDP: TCP templates live as long as their session
				s.templates.SetLifetime(rc.TemplateLifetime, now)
			}
		}
	}
}

// retire closes a removed output once it has written what it holds, or at
// deadline. It receives no new messages meanwhile. Event loop only.
func (r *Receiver) retire(o output, deadline time.Time) {
	if !r.retiring[o] {
		r.retiring[o] = true
		r.retired.Add(1)
	}
	if o.PendingBytes() == 0 || time.Now().After(deadline) {
		r.finishRetiring(o)
		return
	}
	o.Flush()
	time.AfterFunc(50*time.Millisecond, func() { r.onLoop(func() { r.retire(o, deadline) }) })
}

// finishRetiring stops a retiring output (at its turn, or because the receiver
// stops). Event loop only.
func (r *Receiver) finishRetiring(o output) {
	if !r.retiring[o] {
		return // finished already; a retire timer may still fire
	}
	if n := o.PendingBytes(); n > 0 {
		r.log.Warn("output removed with data still queued", "output", r.outputKeys[o], "bytes", n)
	}
	o.Flush()
	o.Stop()
	delete(r.outputKeys, o)
	delete(r.retiring, o)
	if w, ok := o.(interface{ finished() <-chan struct{} }); ok {
		go func() { <-w.finished(); r.retired.Done() }()
	} else {
		r.retired.Done()
	}
}

// finishRetiringAll stops every output still retiring: the receiver stops.
// Event loop only.
func (r *Receiver) finishRetiringAll() {
	for o := range r.retiring {
		r.finishRetiring(o)
	}
}

// waitRetired waits, until deadline, for every output a reload removed to
// finish (a dump writer to close its dump), so that a stopping receiver never
// says it stopped before them.
func (r *Receiver) waitRetired(deadline time.Time) {
	waited := make(chan struct{})
	go func() { r.retired.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(max(time.Until(deadline), 0)):
		r.log.Warn("an output removed by a reload did not finish by the shutdown deadline")
	}
}

// sameRecording reports whether two recording settings can share one dump writer
// (re-export targets are outputs of their own).
func sameRecording(a, b config.Recorder) bool {
	a.Export, b.Export = nil, nil
	return reflect.DeepEqual(a, b)
}

const recorderKey = "recording"
