package balancer

import (
	"context"
	"slices"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// Status is a read-only snapshot of the balancer for the web console: the
// configuration it runs and, per receiver, what its counters say now. Values
// are cumulative; rates are the caller's business (two snapshots apart).
type Status struct {
	Time          time.Time
	Config        *config.Config // the running configuration: do not modify
	Running       bool
	ReloadsOK     uint64
	ReloadsFailed uint64
	LastReload    time.Time
	Receivers     []ReceiverStatus // in configuration order
}

// ReceiverStatus is one receiver's part of a Status.
type ReceiverStatus struct {
	Name   string // "stream/dpi"
	Config config.Receiver
	// Live is false when the receiver's event loop did not answer (starting,
	// stopping): Sessions, Outputs and Dump are then empty.
	Live     bool
	Sessions []SessionStatus

	ReceivedMessages, ReceivedRecords, ReceivedBytes uint64
	// ExporterLostRecords are the records missing in the exporter's sequence
	// numbers (RFC 7011 §3.1), over every session.
	ExporterLostRecords uint64
	ParseErrors         uint64
	Templates           int64
	// Dropped counts the receiver's own drops by reason (no_subreceiver,
	// malformed, writer_queue_full, write_error).
	Dropped map[string]uint64

	Subreceivers []OutputStatus // subreceivers, or re-export targets in Recording
	Dump         *DumpStatus    // the dump writer in Recording mode
}

// SessionStatus is one exporter session.
type SessionStatus struct {
	Remote      string
	Since       time.Time
	LostRecords uint64 // sequence gaps seen on this session, in records
	OutOfOrder  uint64
}

// OutputStatus is one subreceiver or re-export target.
type OutputStatus struct {
	Key   string // "tcp 10.0.0.2:9920", as in logs
	Addr  string
	Proto string
	Up    bool
	// QueueBytes is what waits for it; QueueMark its high-water mark (0: it
	// has no queue, a UDP subreceiver sends at once).
	QueueBytes, QueueMark int64
	Available             bool // RoundRobin may pick it now

	SentMessages, SentRecords, SentBytes uint64
	Reconnects                           uint64
	Dropped                              map[string]uint64 // by reason
}

// DumpStatus is the dump writer of a Recording receiver.
type DumpStatus struct {
	Dir                   string
	Up                    bool // no write error since the last successful write
	QueueBytes, QueueMark int64

	WrittenMessages, WrittenRecords, WrittenBytes uint64
	ClosedFiles                                   uint64
	// Errors by kind; what the writer dropped is in the receiver's Dropped
	// (writer_queue_full, write_error).
	Errors map[string]uint64
}

// statusTimeout bounds the wait for a receiver's event loop.
const statusTimeout = 2 * time.Second

// Status returns a snapshot of every receiver. It is safe for concurrent use:
// the state the event loops own is read on each loop (one short task per
// receiver, never on the per-message path), counters atomically.
func (b *Balancer) Status() Status {
	b.mu.Lock()
	st := Status{
		Time:          time.Now(),
		Config:        b.cfg,
		Running:       b.running,
		ReloadsOK:     b.reloadsOK.Get(),
		ReloadsFailed: b.reloadsFailed.Get(),
		LastReload:    b.lastReload,
	}
	list := make([]*Receiver, 0, len(b.receivers))
	for _, rc := range b.cfg.Receivers {
		if rr := b.receivers[rc.Name()]; rr != nil {
			list = append(list, rr.r)
		}
	}
	b.mu.Unlock()
	for _, r := range list {
		st.Receivers = append(st.Receivers, r.Status())
	}
	return st
}

// Status returns a snapshot of the receiver (see Balancer.Status). Safe for
// concurrent use.
func (r *Receiver) Status() ReceiverStatus {
	select {
	case <-r.ready:
	default:
		// Not listening yet: r.cfg is still ours to read.
		return r.counters(ReceiverStatus{Name: r.name, Config: r.cfg})
	}
	if r.ctx.Err() != nil {
		return ReceiverStatus{Name: r.name}
	}
	ch := make(chan ReceiverStatus, 1)
	err := r.loop.Execute(r.ctx, gnet.RunnableFunc(func(context.Context) error {
		ch <- r.loopStatus()
		return nil
	}))
	if err != nil {
		return ReceiverStatus{Name: r.name}
	}
	t := time.NewTimer(statusTimeout)
	defer t.Stop()
	select {
	case st := <-ch:
		return r.counters(st)
	case <-t.C:
		return ReceiverStatus{Name: r.name}
	}
}

// loopStatus reads what the event loop owns. Event loop only.
func (r *Receiver) loopStatus() ReceiverStatus {
	st := ReceiverStatus{Name: r.name, Config: r.cfg, Live: true}
	for s := range r.sessions {
		st.Sessions = append(st.Sessions, SessionStatus{
			Remote:      s.remote.String(),
			Since:       s.since,
			LostRecords: s.seq.Lost(),
			OutOfOrder:  s.seq.OutOfOrder(),
		})
	}
	slices.SortFunc(st.Sessions, func(a, b SessionStatus) int { return a.Since.Compare(b.Since) })
	for _, o := range r.outputs {
		key := r.outputKeys[o]
		if rec, ok := o.(*recorder); ok {
			st.Dump = rec.status()
			continue
		}
		out := OutputStatus{Key: key, QueueBytes: int64(o.PendingBytes()), Available: o.Available()}
		if proto, addr, ok := cutKey(key); ok {
			out.Proto, out.Addr = proto, addr
		}
		if _, udp := o.(*forward.UDP); !udp {
			out.QueueMark = int64(r.cfg.QueueBytes)
		}
		if m := r.outMetrics[key]; m != nil {
			out.Up = m.Up.Load() != 0
			out.SentMessages = m.SentMessages.Get()
			out.SentRecords = m.SentRecords.Get()
			out.SentBytes = m.SentBytes.Get()
			out.Reconnects = m.Reconnects.Get()
			out.Dropped = make(map[string]uint64, len(m.Dropped))
			for reason, c := range m.Dropped {
				out.Dropped[reason] = c.Get()
			}
		}
		st.Subreceivers = append(st.Subreceivers, out)
	}
	return st
}

// status reads the recorder's state; its fields are atomics and counters.
func (rec *recorder) status() *DumpStatus {
	d := &DumpStatus{
		Dir:             rec.dir,
		Up:              rec.up.Load(),
		QueueBytes:      max(0, rec.headPub.Load()-rec.tail.Load()),
		QueueMark:       rec.limit,
		WrittenMessages: rec.m.messages.Get(),
		WrittenRecords:  rec.m.records.Get(),
		WrittenBytes:    rec.m.bytes.Get(),
		ClosedFiles:     rec.m.closed.Get(),
		Errors:          make(map[string]uint64, len(rec.m.errors)),
	}
	for kind, c := range rec.m.errors {
		d.Errors[kind] = c.Get()
	}
	return d
}

// counters adds the receiver's own counters, which any goroutine may read.
func (r *Receiver) counters(st ReceiverStatus) ReceiverStatus {
	m := r.m
	st.ReceivedMessages = m.receivedMessages.Get()
	st.ReceivedRecords = m.receivedRecords.Get()
	st.ReceivedBytes = m.receivedBytes.Get()
	st.ExporterLostRecords = m.exporterLost.Get()
	st.Templates = m.templates.Load()
	for _, c := range m.parseErrors {
		st.ParseErrors += c.Get()
	}
	st.Dropped = make(map[string]uint64, len(m.dropped))
	for reason, c := range m.dropped {
		st.Dropped[reason] = c.Get()
	}
	return st
}

// cutKey splits an outputKey ("tcp 10.0.0.2:9920").
func cutKey(key string) (proto, addr string, ok bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == ' ' {
			return key[:i], key[i+1:], true
		}
	}
	return "", "", false
}
