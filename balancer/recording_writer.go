// The recorder's writer goroutine: it takes the queue the event loop fills,
// writes the open dump and rotates it per window.

package balancer

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// run is the writer goroutine.
func (rc *recorder) run() {
	defer close(rc.done)
	rc.log.Info("dump writer started", "dir", rc.dir, "rotate_every", rc.cfg.RotateEvery.String(),
		"rotate_records", rc.cfg.RotateRecords, "queue_bytes", rc.limit)
	// Listed before the writer makes .part files of its own.
	leftovers, _ := filepath.Glob(filepath.Join(rc.dir, globEscape(rc.prefix)+"*"+dump.Ext+dump.PartSuffix))
	// The prefix of stream a, DPI 1 is also that of stream a_1: keep ours.
	leftovers = slices.DeleteFunc(leftovers, func(p string) bool {
		n, err := dump.ParsePart(filepath.Base(p))
		return err == nil && (n.Stream != rc.stream || n.DPI != rc.dpi)
	})
	closerDone := make(chan struct{})
	go rc.closeLoop(closerDone, leftovers)
	t := time.NewTicker(rc.tick)
	defer t.Stop()
	for quit := false; ; {
		rc.process()
		if quit {
			break
		}
		rc.checkClock()
		rc.idle.Store(true)
		if rc.hasWork() {
			rc.idle.Store(false)
			continue
		}
		select {
		case <-rc.notify:
		case <-t.C:
		case <-rc.quit:
			quit = true
		}
		rc.idle.Store(false)
	}
	if rc.dump != nil {
		rc.rotate()
	}
	close(rc.closeCh)
	<-closerDone
}

func (rc *recorder) hasWork() bool {
	return rc.rchunk.n.Load() > int64(rc.rpos) || rc.rchunk.next.Load() != nil
}

// process writes every entry the loop handed over, then flushes the buffer.
func (rc *recorder) process() {
	for {
		c := rc.rchunk
		for n := int(c.n.Load()); rc.rpos < n; {
			b := c.buf[rc.rpos:]
			var size int
			switch kind := binary.LittleEndian.Uint32(b); kind {
			case entryWindow:
				rc.win = int64(binary.LittleEndian.Uint64(b[entryHeader:]))
				size = entryHeader + 8
			case entryTemplates:
				n := int(binary.LittleEndian.Uint32(b[4:]))
				_, _ = rc.cache.Learn(b[entryHeader:entryHeader+n], time.Time{})
				size = entryHeader + pad8(n)
			default:
				word := binary.LittleEndian.Uint32(b[4:])
				rc.message(b[entryHeader:entryHeader+int(kind)], int64(word&recordsMask), word&flagData != 0, word&flagTemplates != 0)
				size = entryHeader + pad8(int(kind))
			}
			// Counted only now: flushBuf reports as written what is before
			// consumed, and message may flush before it writes msg.
			rc.rpos += size
			rc.consumed += int64(size)
		}
		next := c.next.Load()
		if next == nil {
			break
		}
		if int(c.n.Load()) > rc.rpos {
			continue // entries published just before next was set
		}
		rc.rchunk, rc.rpos = next, 0
		rc.putChunk(c)
	}
	rc.flushBuf()
}

// message writes one message to the current dump, opening, rotating or
// dropping as needed. Writer goroutine.
func (rc *recorder) message(msg []byte, records int64, data, templates bool) {
	if templates {
		// Learned even when the message is dropped: later dumps need them.
		_, _ = rc.cache.Learn(msg, time.Time{})
	}
	d := rc.dump
	if d != nil && (d.window != rc.win ||
		rc.cfg.RotateRecords > 0 && d.records > 0 && d.records+records > rc.cfg.RotateRecords) {
		rc.rotate()
		d = nil
	}
	if d == nil {
		if !data {
			// Template-only: the next dump starts with these templates anyway
			// (so it counts as written), and a window with no data makes no file.
			rc.m.messages.Inc()
			return
		}
		if rc.failing && rc.now().Before(rc.retryAt) {
			rc.dropWrite.Inc()
			rc.failDrops++
			return
		}
		if d = rc.open(); d == nil {
			rc.dropWrite.Inc()
			rc.failDrops++
			return
		}
	}
	_ = d.fw.WriteChecked(msg, data) // into dumpBuffer, whose Write never fails
	d.records += records
	rc.bufMsgs++
	rc.bufRecs += int(records)
	if data {
		rc.bufData++
	}
	if len(rc.buf.b) >= writeBufferBytes {
		rc.flushBuf()
	}
}

// open creates the next dump of the current window. On failure it enters the
// failing state and returns nil.
func (rc *recorder) open() *openDump {
	var part string
	var f *os.File
	var err error
	for try := 0; try < 10; try++ {
		part = rc.pickName(rc.win) + dump.PartSuffix
		f, err = os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		switch {
		case errors.Is(err, os.ErrExist):
			continue // another process took the name since pickName looked
		case errors.Is(err, os.ErrNotExist):
			// Someone removed the directory: make it again.
			if mkErr := os.MkdirAll(rc.dir, 0o755); mkErr == nil {
				continue
			}
		}
		break
	}
	if err != nil {
		rc.m.errors["open"].Inc()
		rc.setFailing("open", err)
		return nil
	}
	// The lock tells a restarting process (socket hand-over) that this .part
	// is alive and not to be recovered; the kernel drops it when we die.
	_ = dump.TryLock(f)
	var df dumpFile = f
	if hook := dumpFileHook.Load(); hook != nil {
		df = (*hook)(f)
	}
	d := &openDump{f: df, part: part, window: rc.win}
	d.fw = ipfix.NewFileWriter(&rc.buf, rc.cache)
	rc.dump = d
	return d
}

// instance names the dumps of this process (dump.Instance): drawn at start,
// so a successor after a restart names its dumps apart from ours.
var instance = dump.NewInstance()

// pickName returns the path of a new dump of window win (without
// dump.PartSuffix). The name never repeats (dump.Name): no other file, closed,
// being written, loaded, quarantined or deleted, ever had it.
func (rc *recorder) pickName(win int64) string {
	n := rc.inst.Name(rc.stream, rc.dpi, time.Unix(0, win), rc.now())
	return filepath.Join(rc.dir, n.String())
}

// flushBuf writes the buffer to the current dump and publishes the queue
// bytes written (or dropped) so far.
func (rc *recorder) flushBuf() {
	d := rc.dump
	if d != nil && len(rc.buf.b) > 0 {
		n, err := d.f.Write(rc.buf.b)
		if err != nil {
			rc.writeFailed(d, err)
		} else {
			d.size += int64(n)
			d.messages += int64(rc.bufMsgs)
			d.dataMsgs += int64(rc.bufData)
			rc.m.messages.Add(rc.bufMsgs)
			rc.m.records.Add(rc.bufRecs)
			rc.m.bytes.Add(n)
			if d.size-d.kicked >= writebackBytes {
				startWriteback(d.f.Fd(), d.kicked, d.size-d.kicked)
				d.kicked = d.size
			}
			if rc.failing {
				rc.failing = false
				rc.up.Store(true)
				rc.log.Info("dump writes resumed", "file", d.part, "dropped_messages", rc.failDrops)
				rc.failDrops = 0
			}
		}
	}
	rc.buf.b = rc.buf.b[:0]
	rc.bufMsgs, rc.bufData, rc.bufRecs = 0, 0, 0
	rc.tail.Store(rc.consumed)
}

// writeFailed drops the buffer, cuts the dump back to its last complete
// message and hands it to the closer: a dump never gets its final name with a
// torn tail.
func (rc *recorder) writeFailed(d *openDump, err error) {
	rc.m.errors["write"].Inc()
	rc.dropWrite.Add(rc.bufMsgs)
	rc.failDrops += rc.bufMsgs
	d.records -= int64(rc.bufRecs)
	if terr := d.f.Truncate(d.size); terr != nil {
		d.broken = true
	}
	rc.setFailing("write", err)
	rc.dump = nil
	rc.closeCh <- d
}

func (rc *recorder) setFailing(op string, err error) {
	rc.retryAt = rc.now().Add(retryEvery)
	if rc.failing {
		return
	}
	rc.failing = true
	rc.up.Store(false)
	rc.log.Warn("dump writes failing, dropping messages until they succeed", "dir", rc.dir, "op", op, "err", err)
}

// rotate ends the current dump; the closer finishes it.
func (rc *recorder) rotate() {
	rc.flushBuf()
	if d := rc.dump; d != nil {
		rc.dump = nil
		rc.closeCh <- d
	}
}

// checkClock closes the current dump once the wall clock has left its window,
// even when nothing more arrives (the writer has processed all it was given).
func (rc *recorder) checkClock() {
	if rc.dump != nil && windowStart(rc.now(), rc.period) != rc.dump.window {
		rc.rotate()
	}
}

// dumpBuffer is the writer's buffer; FileWriter writes whole messages into it.
type dumpBuffer struct{ b []byte }

func (w *dumpBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// windowStart returns the start (unix ns) of the rotation window holding t:
// windows are multiples of the period since the Unix epoch, so every receiver
// with the same period rotates at the same instants.
func windowStart(t time.Time, period int64) int64 {
	ns := t.UnixNano()
	r := ns % period
	if r < 0 {
		r += period
	}
	return ns - r
}

func pad8(n int) int { return (n + 7) &^ 7 }
