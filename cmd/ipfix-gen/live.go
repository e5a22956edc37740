package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Batches: one write(2) per batchBytes for TCP and files, one sendmmsg(2)
// per batchMessages datagrams for UDP.
const (
	batchBytes    = 256 << 10
	batchMessages = 256
)

// msgWriter frames records into messages of one observation domain directly
// in a batch (no copy between message and batch) with an ipfix.MessageBuilder,
// closing a message when the next record would make it exceed max. Sequence
// numbers count data records (RFC 7011 §3.1).
type msgWriter struct {
	b          *batch
	mb         ipfix.MessageBuilder
	odid       uint32
	max        int
	seq        uint32
	exportTime uint32
}

func newMsgWriter(b *batch, odid uint32, maxSize int) *msgWriter {
	return &msgWriter{b: b, mb: ipfix.NewMessageBuilder(&b.buf, maxSize), odid: odid, max: maxSize}
}

var errRecordTooLarge = errors.New("record does not fit in a message")

// add appends one data record of template id.
func (m *msgWriter) add(id uint16, rec []byte) error {
	if !m.mb.Fits(id, len(rec)) {
		m.close()
	}
	if !m.mb.Open() && ipfix.HeaderLen+ipfix.SetHeaderLen+len(rec) > m.max {
		return fmt.Errorf("%w: %d bytes, -msg-size %d", errRecordTooLarge, len(rec), m.max)
	}
	m.mb.Append(id, rec, 1)
	return nil
}

// close ends the open message, if any.
func (m *msgWriter) close() {
	msg, recs := m.mb.Finish(m.exportTime, m.seq, m.odid)
	if msg == nil {
		return
	}
	m.b.ends = append(m.b.ends, len(m.b.buf))
	m.b.records += int64(recs)
	m.seq += recs
}

// pacer spreads n units per second: wait returns how long to sleep after
// done units so far.
type pacer struct {
	start time.Time
	rate  float64
}

func (p pacer) wait(done int64, now time.Time) time.Duration {
	if p.rate <= 0 {
		return 0
	}
	due := p.start.Add(time.Duration(float64(done) / p.rate * float64(time.Second)))
	return due.Sub(now)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// chunkFor is how many units to produce between clock checks: about 2 ms
// worth when paced, else 256.
func chunkFor(rate float64) int64 {
	if rate <= 0 {
		return 256
	}
	return int64(max(1, min(256, rate/500)))
}

// progress logs a line every so often.
type progress struct {
	every time.Duration
	next  time.Time
	last  time.Time
	lastS stats
}

func newProgress(every time.Duration, now time.Time) *progress {
	return &progress{every: every, next: now.Add(every), last: now}
}

func (p *progress) tick(now time.Time, st *stats) {
	if p.every <= 0 || now.Before(p.next) {
		return
	}
	sec := now.Sub(p.last).Seconds()
	slog.Info("progress", "messages", st.messages, "records", st.records, "bytes", st.bytes,
		"messages_per_second", int64(float64(st.messages-p.lastS.messages)/sec),
		"records_per_second", int64(float64(st.records-p.lastS.records)/sec),
		"reconnects", st.reconnects)
	p.last, p.lastS, p.next = now, *st, now.Add(p.every)
}

// runContext bounds ctx by -duration; reaching it is a normal end.
func runContext(ctx context.Context, o *options) (context.Context, context.CancelFunc) {
	if o.duration > 0 {
		return context.WithTimeout(ctx, o.duration)
	}
	return context.WithCancel(ctx)
}

// normalEnd turns the end of the run context into a clean stop.
func normalEnd(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func runLive(parent context.Context, o *options, st *stats) error {
	g, err := dpisim.NewWithConfig(dpisim.Config{Stream: o.stream, Seed: o.seed, IPv6Share: o.ipv6Share,
		Subscribers: o.subscribers, Hosts: o.hosts})
	if err != nil {
		return err
	}
	ctx, cancel := runContext(parent, o)
	defer cancel()
	start := time.Now()
	cache := ipfix.NewTemplateCache(0)
	for _, t := range g.Templates() {
		cache.Add(o.odid, t, start)
	}
	var b batch
	var mw *msgWriter
	var tmplBuf []byte
	// templates returns template messages carrying every template of the
	// stream, with the sequence number of the next data message (RFC 7011
	// §3.1: template-only messages do not advance it).
	// They carry the export time of the messages being made, or of the batch
	// sent again after them: never later than the data that follows.
	var noClock ipfix.ExportClock // the generator's clock is mw.exportTime
	templates := func(resend *batch) ([]byte, int64) {
		seq := mw.seq
		var follow map[uint32]uint32
		if resend != nil && len(resend.buf) >= ipfix.HeaderLen {
			seq = binary.BigEndian.Uint32(resend.buf[8:12])
			follow = make(map[uint32]uint32)
			ipfix.FirstExportTimes(follow, resend.buf)
		}
		exportTime := noClock.Stamp(o.odid, time.Unix(int64(mw.exportTime), 0), follow)
		tmplBuf = cache.AppendTemplateMessages(tmplBuf[:0], o.odid, exportTime, seq, mw.max)
		return tmplBuf, int64(cache.Len())
	}
	out, err := openOutput(ctx, o, templates)
	if err != nil {
		return normalEnd(err)
	}
	maxSize := min(o.msgSize, out.maxMessage())
	mw = newMsgWriter(&b, o.odid, maxSize)
	mw.exportTime = uint32(start.Unix())
	_, udp := out.(*udpOutput)
	slog.Info("generating", "stream", o.stream, "records", o.records, "duration", o.duration,
		"rate", o.rate, "ipv6_share", o.ipv6Share, "msg_size", maxSize, "seed", o.seed)

	// flush sends the complete messages of the batch; an open message
	// stays, moved to the front.
	flush := func() error {
		if b.empty() {
			return nil
		}
		full := b.buf
		if mw.mb.Open() {
			b.buf = full[:mw.mb.Start()]
		}
		err := out.send(ctx, &b, st)
		b.reset()
		if mw.mb.Open() {
			start := mw.mb.Start()
			b.buf = full[:copy(full, full[start:])]
			mw.mb.Moved(start)
		}
		return err
	}
	st.start = time.Now()
	err = func() error {
		b.add(templates(nil))
		chunk := chunkFor(o.rate)
		pace := pacer{start: st.start, rate: o.rate}
		prog := newProgress(o.progressEvery, st.start)
		nextTemplates := st.start.Add(o.templateEvery)
		scratch := make([]byte, 0, dpisim.MaxRecordLength)
		var produced int64
		for ctx.Err() == nil {
			n := chunk
			if o.records > 0 {
				n = min(n, o.records-produced)
				if n == 0 {
					break
				}
			}
			for range n {
				id, rec := g.Next(scratch[:0])
				if err := mw.add(id, rec); err != nil {
					return err
				}
			}
			produced += n
			now := time.Now()
			g.SetNow(now)
			mw.exportTime = uint32(now.Unix())
			if udp && o.templateEvery > 0 && !now.Before(nextTemplates) {
				// RFC 7011 §8.4: over UDP, templates are re-sent periodically.
				mw.close()
				b.add(templates(nil))
				nextTemplates = now.Add(o.templateEvery)
			}
			if d := pace.wait(produced, now); d > 0 {
				// Ahead of the rate: send what we have, then wait.
				mw.close()
				if err := flush(); err != nil {
					return err
				}
				sleepCtx(ctx, d)
			} else if len(b.buf) >= batchBytes || (udp && len(b.ends) >= batchMessages) {
				if err := flush(); err != nil {
					return err
				}
			}
			prog.tick(now, st)
		}
		return nil
	}()
	mw.close()
	if ferr := flush(); err == nil {
		err = ferr
	}
	if cerr := out.close(); err == nil {
		err = cerr
	}
	slog.Info("done", "stream", o.stream, "records", st.records, "messages", st.messages, "bytes", st.bytes,
		"cpu_seconds", cpuSeconds())
	return normalEnd(err)
}
