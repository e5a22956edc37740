package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// replayFile holds the messages of an IPFIX file back to back in memory,
// with what each carries, so that sending them costs no parsing.
type replayFile struct {
	buf       []byte
	ends      []int
	records   []int32  // data records per message (sequence numbers)
	templates []int32  // template records per message
	domain    []uint16 // index into domains
	domains   []uint32
	firstSeq  []uint32 // per domain: sequence number of its first message
	times     []uint32 // export time of each message, as in the file
	// span is how much later each loop's export times are than the previous
	// loop's: the file's earliest to latest export time, so that export time
	// never goes back on the session from one loop to the next.
	span  uint32
	cache *ipfix.TemplateCache

	totalRecords, totalTemplates int64
}

// loadReplay reads an IPFIX file (RFC 5655: messages back to back; ours or
// any exporter's). Messages larger than maxSize are split at record
// boundaries (ipfix.Repack), so that each fits a UDP datagram.
func loadReplay(path string, maxSize int) (*replayFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &replayFile{cache: ipfix.NewTemplateCache(0), buf: make([]byte, 0, len(data))}
	domIndex := map[uint32]uint16{}
	var unknown int
	var firstErr error
	now := time.Now()
	add := func(msg []byte) {
		odid := binary.BigEndian.Uint32(msg[12:16])
		d, ok := domIndex[odid]
		if !ok {
			d = uint16(len(f.domains))
			domIndex[odid] = d
			f.domains = append(f.domains, odid)
			f.firstSeq = append(f.firstSeq, binary.BigEndian.Uint32(msg[8:12]))
		}
		recs, err := f.cache.RecordCount(msg)
		if err != nil {
			unknown++
			if firstErr == nil {
				firstErr = err
			}
		}
		tm := countTemplateRecords(msg)
		f.buf = append(f.buf, msg...)
		f.ends = append(f.ends, len(f.buf))
		f.records = append(f.records, int32(recs))
		f.templates = append(f.templates, int32(tm))
		f.domain = append(f.domain, d)
		f.times = append(f.times, binary.BigEndian.Uint32(msg[4:8]))
		f.totalRecords += int64(recs)
		f.totalTemplates += int64(tm)
	}
	for off := 0; off < len(data); {
		n, err := ipfix.FrameLength(data[off:])
		if err == nil && n == 0 {
			err = ipfix.ErrShortMessage
		}
		if err == nil {
			err = ipfix.CheckMessage(data[off : off+n])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: message at offset %d: %w", path, off, err)
		}
		msg := data[off : off+n]
		off += n
		if _, err := f.cache.Learn(msg, now); err != nil {
			return nil, fmt.Errorf("%s: templates at offset %d: %w", path, off-n, err)
		}
		if len(msg) <= maxSize {
			add(msg)
			continue
		}
		if err := ipfix.Repack(msg, f.cache, maxSize, add); err != nil {
			return nil, fmt.Errorf("%s: splitting message at offset %d: %w", path, off-n, err)
		}
	}
	if len(f.ends) == 0 {
		return nil, fmt.Errorf("%s: no IPFIX messages", path)
	}
	earliest, latest := f.times[0], f.times[0]
	for _, t := range f.times {
		if ipfix.ExportTimeBefore(t, earliest) {
			earliest = t
		}
		if ipfix.ExportTimeBefore(latest, t) {
			latest = t
		}
	}
	f.span = latest - earliest
	if unknown > 0 {
		slog.Warn("messages with data of unknown templates: their records are not counted",
			"file", path, "messages", unknown, "err", firstErr)
	}
	return f, nil
}

// countTemplateRecords counts the template and options template records of a
// checked message (withdrawals excluded).
func countTemplateRecords(msg []byte) int {
	n := 0
	it := ipfix.Sets(msg)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		k, err := s.TemplateRecords()
		n += k
		if err != nil {
			return n
		}
	}
	return n
}

// templateMessages returns messages carrying every template of the file, per
// domain, for a new TCP session or a periodic UDP refresh. They carry the
// export time of the messages being replayed (clock.Stamp: the last one sent
// in the domain, never later than the first in follow, the batch sent again
// after them), not ours: a capture's clock is behind ours, and a collector
// refuses a TCP session whose export time goes back (IPFIXcol2 does).
func (f *replayFile) templateMessages(dst []byte, seqs []uint32, maxSize int, clock *ipfix.ExportClock, follow map[uint32]uint32) ([]byte, int64) {
	now := time.Now()
	var n int64
	for i, odid := range f.domains {
		dst = f.cache.AppendTemplateMessages(dst, odid, clock.Stamp(odid, now, follow), seqs[i], maxSize)
		n += int64(len(f.cache.Templates(odid)))
	}
	return dst, n
}

func runReplay(parent context.Context, o *options, st *stats) error {
	ctx, cancel := runContext(parent, o)
	defer cancel()
	var f *replayFile
	// Sequence numbers go on across loops, per domain, so that a collector
	// sees one consistent session (RFC 7011 §3.1).
	var seqs, batchSeqs []uint32 // per domain: next, and at the start of the batch in flight
	var clock ipfix.ExportClock  // export times of the messages sent so far
	var tmplBuf []byte
	maxSize := ipfix.MaxMessageLen
	templates := func(resend *batch) ([]byte, int64) {
		s := seqs
		var follow map[uint32]uint32
		if resend != nil {
			s = batchSeqs
			follow = make(map[uint32]uint32)
			ipfix.FirstExportTimes(follow, resend.buf)
		}
		var n int64
		tmplBuf, n = f.templateMessages(tmplBuf[:0], s, maxSize, &clock, follow)
		return tmplBuf, n
	}
	out, err := openOutput(ctx, o, templates)
	if err != nil {
		return normalEnd(err)
	}
	defer func() {
		if out != nil {
			out.close()
		}
	}()
	_, udp := out.(*udpOutput)
	if udp {
		maxSize = out.maxMessage()
	}
	f, err = loadReplay(o.replay, maxSize)
	if err != nil {
		return err
	}
	seqs = append(seqs, f.firstSeq...)
	slog.Info("loaded", "file", o.replay, "messages", len(f.ends), "records", f.totalRecords,
		"templates", f.totalTemplates, "bytes", len(f.buf), "domains", len(f.domains))

	var b batch
	st.start = time.Now()
	err = func() error {
		start := st.start
		pace := pacer{start: start, rate: o.rate}
		chunk := int(chunkFor(o.rate))
		if udp {
			chunk = min(chunk, batchMessages)
		}
		prog := newProgress(o.progressEvery, start)
		nextTemplates := start.Add(o.templateEvery)
		var sent int64
		for loop := int64(0); loop < o.loops; loop++ {
			for i := 0; i < len(f.ends); {
				if ctx.Err() != nil {
					return nil
				}
				// A chunk of contiguous messages: one write for TCP and
				// files, one sendmmsg for UDP; at least one message.
				s := prevEnd(f.ends, i)
				b.reset()
				batchSeqs = append(batchSeqs[:0], seqs...)
				j := i
				for j < len(f.ends) && (j == i || (j-i < chunk && f.ends[j]-s <= batchBytes)) {
					d := f.domain[j]
					msg := f.buf[prevEnd(f.ends, j):f.ends[j]]
					ipfix.SetSequenceNumber(msg, seqs[d])
					// Export time goes on across loops, as sequence numbers do.
					binary.BigEndian.PutUint32(msg[4:8], f.times[j]+uint32(loop)*f.span)
					clock.Observe(msg)
					seqs[d] += uint32(f.records[j])
					b.ends = append(b.ends, f.ends[j]-s)
					b.records += int64(f.records[j])
					b.templates += int64(f.templates[j])
					j++
				}
				b.buf = f.buf[s:f.ends[j-1]]
				if err := out.send(ctx, &b, st); err != nil {
					return err
				}
				sent += int64(j - i)
				i = j
				now := time.Now()
				if udp && o.templateEvery > 0 && !now.Before(nextTemplates) {
					// RFC 7011 §8.4: over UDP, templates are re-sent periodically.
					var tb batch
					tb.add(templates(nil))
					if err := out.send(ctx, &tb, st); err != nil {
						return err
					}
					nextTemplates = now.Add(o.templateEvery)
				}
				if d := pace.wait(sent, now); d > 0 {
					sleepCtx(ctx, d)
				}
				prog.tick(now, st)
			}
		}
		return nil
	}()
	cerr := out.close()
	out = nil
	if err == nil {
		err = cerr
	}
	slog.Info("done", "file", o.replay, "messages", st.messages, "records", st.records, "bytes", st.bytes,
		"cpu_seconds", cpuSeconds())
	return normalEnd(err)
}

func prevEnd(ends []int, j int) int {
	if j == 0 {
		return 0
	}
	return ends[j-1]
}
