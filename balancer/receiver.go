package balancer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Options are a receiver's dependencies beyond its configuration.
type Options struct {
	Logger *slog.Logger
	// StatsEvery is the period of the one-line stats log; 0 disables it.
	StatsEvery time.Duration
	// ShutdownTimeout bounds how long Run drains queues after ctx ends.
	ShutdownTimeout time.Duration
	// Now is the clock (templates lifetimes, dump rotation); time.Now when nil.
	Now func() time.Time
}

// Receiver is one stream of one DPI: a listening socket, the exporter sessions it
// accepts and the outputs it feeds (subreceivers, or the dump writer and its
// re-export targets). New is inert; Run does the work until its context ends.
type Receiver struct {
	cfg    config.Receiver
	name   string
	opts   Options
	log    *slog.Logger
	set    *metrics.Set
	m      *receiverMetrics
	labels string

	outputs    []output
	outputKeys map[output]string // outputKey, or recorderKey
	// retiring holds the outputs a reload removed that still drain (event loop
	// only); retired counts those not finished yet, a dump writer until it has
	// closed its dump: a stopping receiver waits for them.
	retiring map[output]bool
	retired  sync.WaitGroup
	// outMetrics is written on the loop (a reload adds a subreceiver) and read by
	// the stats goroutine: under outMu.
	outMu      sync.Mutex
	outMetrics map[string]*forward.Metrics
	rr         int // index of the output RoundRobin picked last

	// Event-loop state.
	ctx      context.Context
	loop     gnet.EventLoop
	eng      gnet.Engine
	sessions map[*session]gnet.Conn // UDP sessions have a nil Conn
	// sessionsClosed is set once a stopping receiver closed its sessions.
	sessionsClosed bool
	// passOn, once a successor process asks for our sessions, passes each new
	// exporter connection on at once.
	passOn func(handoverFrame, int) error
	// inheritedUDP is the predecessor's socket for a UDP receiver (set before Run).
	inheritedUDP     *os.File
	inheritedSources map[string][]byte
	// cur is the session whose message dispatch is routing: outputs that re-pack
	// (UDP subreceivers) read its templates in send.
	cur *session
	// msg is the message being dispatched as its outputs get it (a pointer to
	// it: no allocation), with what the scan found in its sets and the
	// numbering token (forward.Message.FreeHeader).
	msg forward.Message

	extract []byte // template-only copies of this batch (RoundRobin)

	// tids are the sessions' template ids downstream.
	tids templateIDs

	addr      net.Addr
	ready     chan struct{}
	closeOnce sync.Once

	// spoolers are the spools of the subreceivers (All), closed when Run ends.
	spMu     sync.Mutex
	spoolers []*forward.Spooler
	// rrs is the receiver's own spool (RoundRobin; nil: none). Event loop only.
	rrs *rrSpool
}

// New checks cfg and builds the receiver's outputs; it opens no socket.
func New(cfg config.Receiver, opts Options) (*Receiver, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	r := &Receiver{
		cfg:        cfg,
		name:       cfg.Name(),
		opts:       opts,
		set:        metrics.NewSet(),
		labels:     labelsFor(cfg.Stream, cfg.DPI),
		sessions:   make(map[*session]gnet.Conn),
		outputKeys: make(map[output]string),
		retiring:   make(map[output]bool),
		outMetrics: make(map[string]*forward.Metrics),
		ready:      make(chan struct{}),
	}
	r.log = opts.Logger.With("receiver", r.name)
	r.m = newReceiverMetrics(r.set, r.labels)
	if cfg.Proto == config.UDP {
		// Registered here so the series exists from the start (the loop adds to it).
		r.set.GetOrCreateCounter(`ipfix_balancer_udp_socket_dropped_datagrams_total{` + r.labels + `}`)
	}

	targets := cfg.Subreceivers
	if cfg.Mode == config.Recording {
		rec, err := newRecorder(r, cfg.Recording)
		if err != nil {
			return nil, fmt.Errorf("receiver %s: %w", r.name, err)
		}
		r.outputs = append(r.outputs, rec)
		r.outputKeys[rec] = recorderKey
		targets = cfg.Recording.Export
	}
	for _, t := range targets {
		o, err := r.newSubreceiver(t)
		if err != nil {
			r.closeSpools()
			return nil, fmt.Errorf("receiver %s: subreceiver %s: %w", r.name, t.Addr, err)
		}
		r.outputs = append(r.outputs, o)
	}
	if len(r.outputs) == 0 {
		return nil, fmt.Errorf("receiver %s: no subreceiver", r.name)
	}
	if err := r.newRRSpool(); err != nil {
		r.closeSpools()
		return nil, err
	}
	return r, nil
}

func (r *Receiver) newSubreceiver(t config.Subreceiver) (output, error) {
	o, err := r.buildSubreceiver(t)
	if err == nil {
		r.outputKeys[o] = outputKey(t)
	}
	return o, err
}

func (r *Receiver) buildSubreceiver(t config.Subreceiver) (output, error) {
	// Series outlive a subreceiver removed by a reload, so one re-added later
	// continues them (a Set refuses a name twice).
	r.outMu.Lock()
	m := r.outMetrics[outputKey(t)]
	if m == nil {
		m = forward.NewMetrics(r.set, r.labels+`,subreceiver="`+subreceiverLabel(t)+`"`)
		r.outMetrics[outputKey(t)] = m
	}
	r.outMu.Unlock()
	switch {
	case t.Proto == config.UDP:
		return newUDPSub(r, t.Addr, r.cfg.MTU, m)
	case r.cfg.Proto == config.UDP:
		// A UDP receiver has no gnet loop to host the connection.
		o := forward.NewTCPWriter((*host)(r), t.Addr, r.cfg.QueueBytes, m, r.log)
		if err := r.spoolSubreceiver(o, t); err != nil {
			return nil, err
		}
		return o, nil
	default:
		o := forward.NewTCPOnLoop((*host)(r), t.Addr, r.cfg.QueueBytes, m, r.log)
		if err := r.spoolSubreceiver(o, t); err != nil {
			return nil, err
		}
		return o, nil
	}
}

// Name is "stream/dpi", as in logs.
func (r *Receiver) Name() string { return r.name }

// Metrics is the receiver's own metric set (registered globally while it runs).
func (r *Receiver) Metrics() *metrics.Set { return r.set }

// Ready is closed once the receiver listens and its outputs are starting.
func (r *Receiver) Ready() <-chan struct{} { return r.ready }

// Addr is the address the receiver listens on; valid after Ready.
func (r *Receiver) Addr() net.Addr { return r.addr }

// Run listens and forwards until ctx ends, then drains the outputs for up to
// ShutdownTimeout and returns. A failure to listen is returned at once.
func (r *Receiver) Run(ctx context.Context) error {
	metrics.RegisterSet(r.set)
	defer metrics.UnregisterSet(r.set, true)
	// After the loop stopped: no write to a spool after its Close.
	defer r.closeSpools()
	if r.cfg.Proto == config.UDP {
		return r.runUDP(ctx)
	}
	return r.runTCP(ctx)
}

// Close releases what New took (the spools). Run must have returned.
func (r *Receiver) Close() error {
	r.closeSpools()
	return nil
}

func (r *Receiver) countParseError(err error) {
	r.m.parseErrors[parseErrorKind(err)].Inc()
}

// dispatch routes one complete message of session s to the outputs. Event loop only.
func (r *Receiver) dispatch(s *session, msg []byte) {
	odid := binary.BigEndian.Uint32(msg[12:16])
	sum, err := ipfix.Summarize(s.templates, odid, msg)
	r.route(s, msg, odid, sum, err)
}

// dispatchPair dispatches a, then b, consecutive messages of session s, their
// records counted side by side when each is one data set (ipfix.SummarizePair).
// Such a message has no template set: routing a changes nothing that b's
// summary depends on. Event loop only.
func (r *Receiver) dispatchPair(s *session, a, b []byte) {
	odidA := binary.BigEndian.Uint32(a[12:16])
	odidB := binary.BigEndian.Uint32(b[12:16])
	sa, sb, ok := ipfix.SummarizePair(s.templates, odidA, a, odidB, b)
	if !ok {
		r.dispatch(s, a)
		r.dispatch(s, b)
		return
	}
	r.route(s, a, odidA, sa, nil)
	r.route(s, b, odidB, sb, nil)
}

// route sends msg, of domain odid, summarized as sum (or err), to the outputs.
func (r *Receiver) route(s *session, msg []byte, odid uint32, sum ipfix.Summary, err error) {
	r.cur = s
	m := r.m
	learned := false
	if err != nil && hasTemplateSets(msg) {
		// A template redefined in this very message (UDP allows it without a
		// withdrawal) applies to the data sets after it, which the old layout
		// may not fit: learn first, then check again.
		r.learn(s, msg)
		learned = true
		sum, err = ipfix.Summarize(s.templates, odid, msg)
	}
	if err != nil {
		// Counted as dropped, not as received: received series count messages
		// that were forwarded or recorded.
		r.countParseError(err)
		m.dropped[forward.ReasonMalformed].Inc()
		return
	}
	m.batchMessages++
	m.batchBytes += len(msg)
	s.clock.Observe(msg)
	if sum.TemplateSets > 0 {
		m.templateSets.Inc()
		if !learned {
			r.learn(s, msg)
			sum, _ = ipfix.Summarize(s.templates, odid, msg)
		}
		r.assignIDs(s, msg, odid)
	}
	// From here on msg carries the ids downstream, for every output.
	s.rewrite(msg, odid)
	if len(r.tids.pending) > 0 {
		defer r.releaseWithdrawn()
	}
	if sum.Unknown > 0 {
		// Forwarded all the same: the data is not ours to drop, and a collector that
		// kept the templates of an earlier session can still decode it.
		m.parseErrors["unknown_template"].Add(sum.Unknown)
	}
	records := sum.Records
	m.batchRecords += records
	lost, disorder := s.seq.Observe(odid, binary.BigEndian.Uint32(msg[8:12]), records)
	if lost > 0 {
		m.exporterLost.Add(int(lost))
	}
	if disorder {
		m.exporterDisorder.Inc()
	}

	// Options data (exporter statistics, sampling, type information) describes
	// the session, not one flow: like templates, every subreceiver gets it.
	onlyOptions := sum.Unknown == 0 && sum.OptionRecords == records
	if r.cfg.Mode != config.RoundRobin || sum.DataSets == 0 || onlyOptions {
		if r.cfg.Mode == config.RoundRobin && r.rrs.behind() && r.rrRoute(odid, msg) < 0 {
			// Behind the replay, as the data: a template message sent now
			// would reach the collectors before the older replayed data
			// (its export time later, its templates maybe not theirs).
			r.msg = forward.Message{Bytes: msg, ODID: odid, Records: records, Data: sum.DataSets > 0, Templates: sum.TemplateSets > 0}
			r.rrSpill(&r.msg)
			r.msg = forward.Message{}
			return
		}
		// Not in Recording mode: the dump keeps the exporter's own numbers.
		r.msg = forward.Message{Bytes: msg, ODID: odid, Records: records, Data: sum.DataSets > 0, Templates: sum.TemplateSets > 0}
		r.msg.FreeHeader(r.cfg.Mode == config.All)
		for _, o := range r.outputs {
			o.Send(&r.msg)
		}
		r.msg = forward.Message{}
		return
	}
	pick := r.rrRoute(odid, msg)
	spilled := pick < 0 && r.rrs != nil
	if spilled {
		// The message carries its templates and options data for the replay.
		r.msg = forward.Message{Bytes: msg, ODID: odid, Records: records, Data: sum.DataSets > 0, Templates: sum.TemplateSets > 0}
		r.rrSpill(&r.msg)
		r.msg = forward.Message{}
		return
	}
	if pick < 0 {
		m.dropped[forward.ReasonNoSubreceiver].Inc()
	} else {
		// The message goes to this output alone: it may number it in place.
		r.msg = forward.Message{Bytes: msg, ODID: odid, Records: records, Data: sum.DataSets > 0, Templates: sum.TemplateSets > 0}
		r.msg.FreeHeader(true)
		r.outputs[pick].Send(&r.msg)
	}
	if sum.TemplateSets > 0 || sum.OptionRecords > 0 {
		// Every subreceiver needs every template to decode what it is sent later,
		// and gets the options data.
		t := r.sessionExtract(msg, s, odid)
		r.msg = forward.Message{Bytes: t, ODID: odid, Records: sum.OptionRecords, Data: sum.OptionRecords > 0, Templates: sum.TemplateSets > 0}
		for i, o := range r.outputs {
			if i != pick {
				o.Send(&r.msg)
			}
		}
	}
	r.msg = forward.Message{}
}

// learn applies the template sets of msg to the session's templates.
func (r *Receiver) learn(s *session, msg []byte) {
	if _, err := s.templates.Learn(msg, r.opts.Now()); err != nil {
		r.countParseError(err)
	}
	r.updateTemplateGauge()
}

// hasTemplateSets reports whether msg has a template or options template set
// (framing errors end the walk). Off the hot path: for messages scan refused.
func hasTemplateSets(msg []byte) bool {
	sum, _ := ipfix.Summarize(noTemplates, 0, msg)
	return sum.TemplateSets > 0
}

// nextAvailable returns the next output after the last pick that can take a
// message now, or -1. With a spool, a TCP subreceiver still connecting is not
// picked: what it queued would wait in memory, not on disk, if its connection
// failed (and be lost at a stop), and would go out before older messages
// spooled meanwhile.
func (r *Receiver) nextAvailable() int {
	n := len(r.outputs)
	for i := 1; i <= n; i++ {
		j := (r.rr + i) % n
		o := r.outputs[j]
		if !o.Available() {
			continue
		}
		if r.rrs != nil {
			if t, ok := o.(*forward.TCPOnLoop); ok && t.Conn() == nil {
				continue
			}
		}
		r.rr = j
		return j
	}
	return -1
}

// sessionExtract copies the header, template sets and options data sets (by
// the templates of s) of msg into the batch arena: what every
// subreceiver gets in RoundRobin.
func (r *Receiver) sessionExtract(msg []byte, s *session, odid uint32) []byte {
	c := s.templates
	start := len(r.extract)
	r.extract = append(r.extract, msg[:16]...)
	it := ipfix.Sets(msg)
	for set, ok := it.Next(); ok; set, ok = it.Next() {
		keep := set.ID == ipfix.TemplateSetID || set.ID == ipfix.OptionsTemplateSetID
		if set.ID >= ipfix.MinDataSetID {
			t := c.Lookup(odid, s.upID(odid, set.ID)) // msg has the ids downstream
			keep = t != nil && t.Options
		}
		if keep {
			r.extract = append(r.extract, msg[set.Offset:set.Offset+ipfix.SetHeaderLen+len(set.Body)]...)
		}
	}
	t := r.extract[start:]
	binary.BigEndian.PutUint16(t[2:4], uint16(len(t)))
	return t
}

// AppendTemplates appends messages carrying every current template of every live
// session, numbered for the output whose sequencer is seq, each at most maxSize,
// stamped with the session's export time (session.exportTime) and never later
// than follow, the first export time per domain of what the output has queued
// behind them (nil: nothing).
func (h *host) AppendTemplates(dst []byte, seq *forward.Sequencer, maxSize int, follow map[uint32]uint32) []byte {
	r := (*Receiver)(h)
	now := r.opts.Now()
	follow = r.rrFollow(follow)
	for s := range r.sessions {
		for _, odid := range s.templates.Domains() {
			start := len(dst)
			dst = s.templates.AppendTemplateMessages(dst, odid, s.exportTime(odid, now, follow), seq.At(odid), maxSize)
			s.rewriteMessages(dst[start:])
		}
	}
	return dst
}

func (r *Receiver) updateTemplateGauge() {
	n := 0
	for s := range r.sessions {
		n += s.templates.Len()
	}
	r.m.templates.Store(int64(n))
}

// flush ends a batch: one write per output, metrics published once.
func (r *Receiver) flush() {
	for _, o := range r.outputs {
		o.Flush()
	}
	r.extract = r.extract[:0]
	r.m.publish()
}

// pendingBytes sums what the outputs, retiring ones included, still hold. Event
// loop only.
func (r *Receiver) pendingBytes() int {
	n := 0
	for _, o := range r.outputs {
		n += o.PendingBytes()
	}
	for o := range r.retiring {
		n += o.PendingBytes()
	}
	return n
}

var errClosed = errors.New("receiver closed")

// subreceiverLabel is the subreceiver label value: "host:port", and "host:port/udp"
// for UDP so a TCP and a UDP subreceiver at one address stay two series.
func subreceiverLabel(t config.Subreceiver) string {
	if t.Proto == config.UDP {
		return t.Addr + "/udp"
	}
	return t.Addr
}
