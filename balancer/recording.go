package balancer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Dump files: a receiver in Recording mode writes <dir>/<stream>/, names
// its files and closes them as package dump says (the contract with
// ipfix-loader). A file being written ends in .part; only closed files
// (flushed, fsynced, renamed, directory fsynced) carry the final name, so
// ipfix-loader never reads a half-written file.
const (
	// chunkBytes is one piece of the writer queue. Freed chunks are reused
	// last-in first-out, so while the writer keeps up the event loop copies
	// into the same few chunks, still in the CPU cache; with one ring of
	// queue_bytes every copy went to cold memory (BenchmarkRecording).
	chunkBytes = 256 << 10
	// writeBufferBytes is the writer's buffer: one write(2) per 256 KiB. A
	// bigger one measured no faster (the kernel copies from a buffer still in
	// cache), and a failed write drops less.
	writeBufferBytes = 256 << 10
	// writebackBytes: past this many bytes written since the last hint, the
	// kernel is asked to start writing them back, so the fsync at rotation
	// finds little left to do and stays short.
	writebackBytes = 8 << 20
	// retryEvery is how often the writer tries to open a new dump after a
	// write error (disk full): meanwhile what arrives is dropped and counted.
	retryEvery = time.Second
	// retentionEvery is how often retention runs when no dump closes.
	retentionEvery = time.Minute
	// maxPendingCloses bounds the dumps waiting for their fsync and rename.
	maxPendingCloses = 16
)

// Drop reasons of the recorder (receiver-level series, STYLE.md §7).
const (
	reasonWriterQueueFull = "writer_queue_full" // the disk writer is behind by more than queue_bytes
	reasonWriteError      = "write_error"       // a dump write failed (disk full, I/O error)
)

// Error kinds of ipfix_balancer_dump_errors_total.
var dumpErrorKinds = []string{"open", "write", "sync", "rename", "recover", "remove"}

// Entries of the writer queue: two little-endian uint32, then the payload,
// padded to 8 bytes. A message entry has the message length (1..65535) and its
// data record count, with flagData and flagTemplates set when it carries such
// sets (the loop checked the message: the writer does not walk it). A window
// entry says that what follows arrived in a new rotation window (payload: its
// start, unix ns); a templates entry (second word: its length) is a message
// the writer learns templates from and does not write.
const (
	entryHeader    = 8
	entryWindow    = math.MaxUint32
	entryTemplates = math.MaxUint32 - 1

	flagData      = 1 << 31
	flagTemplates = 1 << 30
	recordsMask   = flagTemplates - 1
)

// chunk is a piece of the writer queue. The event loop appends entries and
// publishes n; once it sets next it never touches the chunk again, and n is
// final. The writer reads up to n, and frees the chunk after next is set.
type chunk struct {
	buf  []byte
	n    atomic.Int64
	next atomic.Pointer[chunk]
}

// dumpFile is what the writer needs of an open dump: *os.File, or a wrapper of
// one that tests use to inject write errors.
type dumpFile interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
	Fd() uintptr
}

// dumpFileHook, when set (tests only), wraps every dump file the writer opens.
var dumpFileHook atomic.Pointer[func(*os.File) dumpFile]

// recorder is the output of Recording mode: it copies each message into a
// queue of at most queue_bytes on the event loop and a writer goroutine writes
// the queue to rotated dump files, so a slow or full disk costs counted drops,
// never a stalled loop. A second goroutine (the closer) fsyncs and renames
// closed dumps, recovers leftovers and applies retention, so a long fsync at
// rotation does not hold up the writer.
//
// Each dump starts with every current template of each observation domain it
// holds (ipfix.FileWriter, fed by a template cache the writer keeps from every
// message it sees), so each file decodes alone (RFC 5655 §8.1).
type recorder struct {
	r      *Receiver
	cfg    config.Recorder
	dir    string // <Dir>/<stream>
	prefix string // "<stream>_<dpi>_"
	inst   *dump.Instance
	period int64 // rotation window, ns
	tick   time.Duration
	now    func() time.Time
	log    *slog.Logger
	m      *recorderMetrics

	limit     int64 // queue_bytes
	reserve   int64 // the end of the queue, kept for messages carrying templates
	maxChunks int
	poolMu    sync.Mutex
	pool      []*chunk     // free chunks, the most recently freed last
	chunks    int          // allocated
	headPub   atomic.Int64 // entry bytes handed over by the loop
	tail      atomic.Int64 // entry bytes the writer has written or dropped
	idle      atomic.Bool  // the writer waits for notify
	up        atomic.Bool  // dumps are being written (no write error since the last success)
	notify    chan struct{}
	quit      chan struct{}
	done      chan struct{}

	// Event loop only.
	wchunk    *chunk
	wlen      int   // bytes of entries in wchunk
	head      int64 // entry bytes queued
	tailSeen  int64 // last tail loaded: no atomic load per message
	stamped   bool  // the current batch has its window entry
	lastWin   int64
	started   bool
	stopped   bool
	dropFull  *metrics.Counter
	dropWrite *metrics.Counter

	// Writer goroutine only.
	rchunk    *chunk
	rpos      int
	consumed  int64
	win       int64 // window of the entries being read
	cache     *ipfix.TemplateCache
	dump      *openDump
	buf       dumpBuffer
	bufMsgs   int // input messages in buf (template priming not counted)
	bufData   int // ... of which carry data sets
	bufRecs   int
	failing   bool
	retryAt   time.Time
	failDrops int
	closeCh   chan *openDump

	// Closer goroutine only.
	closeFailing bool
}

// openDump is one open dump file. Writer goroutine, then the closer's.
type openDump struct {
	f        dumpFile
	part     string
	window   int64
	fw       *ipfix.FileWriter
	size     int64 // bytes in the file
	kicked   int64 // bytes handed to writeback
	records  int64 // data records written, buffer included
	messages int64 // messages in the file, template priming not counted
	dataMsgs int64 // ... of which carry data sets
	broken   bool  // a write failed and the torn tail could not be cut: recover it
}

// recorderMetrics are the dump series of one receiver. A reload that changes
// the recording settings makes a new recorder: it shares them, and the gauges
// follow the recorder that started last (cur).
type recorderMetrics struct {
	messages, records, bytes *metrics.Counter
	closed, recovered        *metrics.Counter
	removed                  map[string]*metrics.Counter
	errors                   map[string]*metrics.Counter
	cur                      atomic.Pointer[recorder]
}

func newRecorderMetrics(set *metrics.Set, labels string) *recorderMetrics {
	m := &recorderMetrics{
		messages:  set.GetOrCreateCounter(`ipfix_balancer_dump_written_messages_total{` + labels + `}`),
		records:   set.GetOrCreateCounter(`ipfix_balancer_dump_written_records_total{` + labels + `}`),
		bytes:     set.GetOrCreateCounter(`ipfix_balancer_dump_written_bytes_total{` + labels + `}`),
		closed:    set.GetOrCreateCounter(`ipfix_balancer_dump_closed_files_total{` + labels + `}`),
		recovered: set.GetOrCreateCounter(`ipfix_balancer_dump_recovered_files_total{` + labels + `}`),
		removed:   make(map[string]*metrics.Counter),
		errors:    make(map[string]*metrics.Counter),
	}
	for _, reason := range []string{"max_bytes", "max_age"} {
		m.removed[reason] = set.GetOrCreateCounter(`ipfix_balancer_dump_removed_files_total{` + labels + `,reason="` + reason + `"}`)
	}
	for _, kind := range dumpErrorKinds {
		m.errors[kind] = set.GetOrCreateCounter(`ipfix_balancer_dump_errors_total{` + labels + `,kind="` + kind + `"}`)
	}
	up := `ipfix_balancer_dump_up{` + labels + `}`
	queue := `ipfix_balancer_dump_queue_bytes{` + labels + `}`
	// Bound to this m: drop those of a recorder retired by an earlier reload.
	set.UnregisterMetric(up)
	set.UnregisterMetric(queue)
	set.NewGauge(up, func() float64 {
		if rc := m.cur.Load(); rc != nil && !rc.up.Load() {
			return 0
		}
		return 1
	})
	set.NewGauge(queue, func() float64 {
		if rc := m.cur.Load(); rc != nil {
			return float64(max(0, rc.headPub.Load()-rc.tail.Load()))
		}
		return 0
	})
	return m
}

var _ output = (*recorder)(nil)

// newRecorder checks cfg and creates the stream's dump directory; the writer
// starts in start.
func newRecorder(r *Receiver, cfg config.Recorder) (output, error) {
	if cfg.Dir == "" {
		return nil, errors.New("recording: no dump directory")
	}
	if cfg.RotateEvery == 0 {
		cfg.RotateEvery = 10 * time.Minute
	}
	if cfg.RotateEvery < time.Second {
		return nil, fmt.Errorf("recording: rotate_every %v: below 1s", cfg.RotateEvery)
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 64 << 20
	}
	dir := dump.StreamDir(cfg.Dir, r.cfg.Stream)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	limit := int64(max(cfg.QueueBytes, 2*chunkBytes))
	rc := &recorder{
		r:         r,
		cfg:       cfg,
		dir:       dir,
		prefix:    dump.Prefix(r.cfg.Stream, r.cfg.DPI),
		inst:      instance,
		period:    int64(cfg.RotateEvery),
		tick:      min(max(cfg.RotateEvery/10, 10*time.Millisecond), time.Second),
		now:       r.opts.Now,
		log:       r.log,
		limit:     limit,
		reserve:   limit / 8,
		maxChunks: int((limit+chunkBytes-1)/chunkBytes) + 1,
		notify:    make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		lastWin:   math.MinInt64,
		win:       math.MinInt64,
		cache:     ipfix.NewTemplateCache(0),
		closeCh:   make(chan *openDump, maxPendingCloses),
	}
	rc.wchunk = rc.getChunk()
	rc.rchunk = rc.wchunk
	rc.buf.b = make([]byte, 0, writeBufferBytes+ipfix.MaxMessageLen)
	// A reload replacing the recorder: same series.
	for _, o := range r.outputs {
		if prev, ok := o.(*recorder); ok {
			rc.m = prev.m
		}
	}
	if rc.m == nil {
		rc.m = newRecorderMetrics(r.set, r.labels)
		rc.m.cur.Store(rc)
	}
	rc.up.Store(true)
	rc.dropFull = r.m.dropped[reasonWriterQueueFull]
	rc.dropWrite = r.m.dropped[reasonWriteError]
	return rc, nil
}

func (rc *recorder) Name() string { return "dump" }

func (rc *recorder) Available() bool { return rc.head-rc.tail.Load() < rc.limit-rc.reserve }

func (rc *recorder) PendingBytes() int { return int(rc.head - rc.tail.Load()) }

// getChunk takes a free chunk, the one freed last, or allocates one while
// fewer than maxChunks exist; nil when the queue is full.
func (rc *recorder) getChunk() *chunk {
	rc.poolMu.Lock()
	defer rc.poolMu.Unlock()
	if n := len(rc.pool); n > 0 {
		c := rc.pool[n-1]
		rc.pool = rc.pool[:n-1]
		return c
	}
	if rc.chunks >= rc.maxChunks {
		return nil
	}
	rc.chunks++
	return &chunk{buf: make([]byte, chunkBytes)}
}

// putChunk frees a chunk the writer has read.
func (rc *recorder) putChunk(c *chunk) {
	c.n.Store(0)
	c.next.Store(nil)
	rc.poolMu.Lock()
	rc.pool = append(rc.pool, c)
	rc.poolMu.Unlock()
}

// Send copies m into the writer queue. Event loop only.
func (rc *recorder) Send(m *forward.Message) {
	msg, records := m.Bytes, m.Records
	if !rc.stamped {
		rc.stampWindow()
	}
	need := entryHeader + pad8(len(msg))
	if !rc.room(need, rc.limit-rc.reserve) {
		// Templates go in the reserve: without them every later dump of the
		// domain would be undecodable, which costs more than the message.
		if !m.Templates || !rc.room(need, rc.limit) {
			rc.dropFull.Inc()
			return
		}
	}
	b := rc.alloc(need)
	if b == nil {
		rc.dropFull.Inc()
		return
	}
	word := uint32(records) & recordsMask
	if m.Data {
		word |= flagData
	}
	if m.Templates {
		word |= flagTemplates
	}
	binary.LittleEndian.PutUint32(b, uint32(len(msg)))
	binary.LittleEndian.PutUint32(b[4:], word)
	copy(b[entryHeader:], msg)
}

// stampWindow starts a batch: when the wall clock entered a new rotation
// window since the last batch, an entry tells the writer. Messages belong to
// the window in which the loop received them, whatever the writer's lag.
func (rc *recorder) stampWindow() {
	w := windowStart(rc.now(), rc.period)
	if w == rc.lastWin {
		rc.stamped = true
		return
	}
	b := rc.alloc(entryHeader + 8)
	if b == nil {
		return // the queue is full: the next message tries again
	}
	binary.LittleEndian.PutUint32(b, entryWindow)
	binary.LittleEndian.PutUint64(b[entryHeader:], uint64(w))
	rc.stamped = true
	rc.lastWin = w
}

// room reports whether n more bytes keep the queue within limit.
func (rc *recorder) room(n int, limit int64) bool {
	if rc.head-rc.tailSeen+int64(n) <= limit {
		return true
	}
	rc.tailSeen = rc.tail.Load()
	return rc.head-rc.tailSeen+int64(n) <= limit
}

// alloc returns n bytes at the end of the queue, moving to a new chunk when
// the current one is full; nil when no chunk is free.
func (rc *recorder) alloc(n int) []byte {
	if rc.wlen+n > chunkBytes {
		next := rc.getChunk()
		if next == nil {
			return nil
		}
		rc.wchunk.n.Store(int64(rc.wlen))
		rc.wchunk.next.Store(next)
		rc.wchunk, rc.wlen = next, 0
		rc.wake()
	}
	b := rc.wchunk.buf[rc.wlen : rc.wlen+n]
	rc.wlen += n
	rc.head += int64(n)
	return b
}

// flush hands the batch to the writer. Event loop only.
func (rc *recorder) Flush() {
	rc.stamped = false
	if rc.head == rc.headPub.Load() {
		return
	}
	rc.wchunk.n.Store(int64(rc.wlen))
	rc.headPub.Store(rc.head)
	rc.wake()
}

func (rc *recorder) wake() {
	if rc.idle.Load() && rc.idle.CompareAndSwap(true, false) {
		select {
		case rc.notify <- struct{}{}:
		default:
		}
	}
}

// start starts the writer and the closer, which first recovers what a crash
// left.
func (rc *recorder) Start() {
	if rc.started || rc.stopped {
		return
	}
	rc.started = true
	rc.m.cur.Store(rc)
	rc.primeTemplates()
	go rc.run()
}

// primeTemplates queues the templates of the exporters' live sessions: a
// recorder made by a reload, or started after sessions were handed over, has
// not seen them go by, and its dumps must decode alone all the same.
func (rc *recorder) primeTemplates() {
	seq := forward.NewSequencer()
	msgs := (*host)(rc.r).AppendTemplates(nil, &seq, ipfix.MaxMessageLen, nil)
	for len(msgs) >= ipfix.HeaderLen {
		n := int(binary.BigEndian.Uint16(msgs[2:4]))
		b := rc.alloc(entryHeader + pad8(n))
		if b == nil {
			break
		}
		binary.LittleEndian.PutUint32(b, entryTemplates)
		binary.LittleEndian.PutUint32(b[4:], uint32(n))
		copy(b[entryHeader:], msgs[:n])
		msgs = msgs[n:]
	}
	rc.Flush()
}

// stop hands over the last batch; the writer writes what it holds, closes
// the current dump and ends. At shutdown stop waits for that, at most
// ShutdownTimeout; when a reload retires the recorder, the loop goes on.
func (rc *recorder) Stop() {
	if rc.stopped {
		return
	}
	rc.stopped = true
	rc.Flush()
	if !rc.started {
		return
	}
	close(rc.quit)
	if ctx := rc.r.ctx; ctx != nil && ctx.Err() == nil {
		return
	}
	select {
	case <-rc.done:
	case <-time.After(rc.r.opts.ShutdownTimeout):
		rc.log.Warn("dump writer still busy at shutdown, its file is recovered at the next start", "dir", rc.dir)
	}
}

// finished is closed once the writer has closed its dump and ended (at once
// when it never started).
func (rc *recorder) finished() <-chan struct{} {
	if !rc.started {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return rc.done
}

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
		return err == nil && (n.Stream != rc.r.cfg.Stream || n.DPI != rc.r.cfg.DPI)
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
	n := rc.inst.Name(rc.r.cfg.Stream, rc.r.cfg.DPI, time.Unix(0, win), rc.now())
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

// closeLoop is the closer goroutine: it recovers leftover .part files, then
// finishes the dumps the writer hands over, in order, and applies retention.
func (rc *recorder) closeLoop(done chan<- struct{}, leftovers []string) {
	defer close(done)
	// Recovery reads each leftover whole (to keep only messages that check
	// out), which takes a while for big dumps: here, the writer does not wait.
	for _, p := range leftovers {
		rc.recoverPart(p)
	}
	var tick <-chan time.Time
	if rc.cfg.MaxBytes > 0 || rc.cfg.MaxAge > 0 {
		t := time.NewTicker(retentionEvery)
		defer t.Stop()
		tick = t.C
		rc.retention()
	}
	for {
		select {
		case d, ok := <-rc.closeCh:
			if !ok {
				return
			}
			rc.finish(d)
			if len(rc.closeCh) == 0 {
				rc.retention()
			}
		case <-tick:
			rc.retention()
		}
	}
}

// finish closes a dump: fsync, rename to its final name, fsync the directory.
func (rc *recorder) finish(d *openDump) {
	if d.dataMsgs == 0 {
		_ = d.f.Close()
		if err := os.Remove(d.part); err != nil {
			rc.closeFailed("remove", d.part, err)
		}
		return
	}
	if d.broken {
		_ = d.f.Close()
		rc.recoverPart(d.part)
		return
	}
	if err := d.f.Sync(); err != nil {
		// What reached the disk is unknown: read it back and keep what is whole.
		rc.closeFailed("sync", d.part, err)
		_ = d.f.Close()
		rc.recoverPart(d.part)
		return
	}
	final, err := rc.rename(d.part)
	_ = d.f.Close()
	if err != nil {
		rc.closeFailed("rename", d.part, err)
		return
	}
	rc.m.closed.Inc()
	if rc.closeFailing {
		rc.closeFailing = false
		rc.log.Info("dumps close again", "dir", rc.dir)
	}
	rc.log.Info("dump closed", "file", final, "bytes", d.size, "messages", d.messages, "records", d.records)
}

// closeFailed counts a closer error and logs it when closing starts failing;
// the .part stays and is recovered at the next start.
func (rc *recorder) closeFailed(kind, file string, err error) {
	rc.m.errors[kind].Inc()
	if !rc.closeFailing {
		rc.closeFailing = true
		rc.log.Warn("dump close failing", "file", file, "op", kind, "err", err)
	}
}

// rename gives a .part its final name (never replacing a file) and fsyncs the
// directory so the name survives a power loss.
func (rc *recorder) rename(part string) (string, error) {
	final := strings.TrimSuffix(part, dump.PartSuffix)
	for n := 1; fileExists(final); n++ {
		// Only a foreign process, or a .part of an older version (legacy
		// name), makes this happen: never replace that file, take a new name.
		if name, err := dump.ParsePart(filepath.Base(part)); err == nil {
			final = rc.pickName(name.Window.UnixNano())
			continue
		}
		final = strings.TrimSuffix(strings.TrimSuffix(part, dump.PartSuffix), dump.Ext) + "_r" + strconv.Itoa(n) + dump.Ext
	}
	if err := os.Rename(part, final); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		rc.m.errors["sync"].Inc()
	}
	return final, nil
}

// recoverPart keeps the complete messages of a .part (read until the first
// error, the torn tail cut) and closes it under its final name; a .part with
// no data message is removed. A .part locked by a live process is left alone.
func (rc *recorder) recoverPart(part string) {
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return // closed meanwhile by the recorder a reload replaced
	}
	if err != nil {
		rc.m.errors["recover"].Inc()
		rc.log.Warn("cannot recover dump", "file", part, "err", err)
		return
	}
	defer f.Close()
	if err := dump.TryLock(f); err != nil {
		rc.log.Info("dump in use by another process, left alone", "file", part)
		return
	}
	st, err := f.Stat()
	if err != nil {
		rc.m.errors["recover"].Inc()
		rc.log.Warn("cannot recover dump", "file", part, "err", err)
		return
	}
	good, msgs, data, why := scanDump(f)
	if data == 0 {
		if err := os.Remove(part); err != nil {
			rc.m.errors["recover"].Inc()
			rc.log.Warn("cannot remove empty dump", "file", part, "err", err)
			return
		}
		rc.log.Info("leftover dump without data removed", "file", part, "bytes", st.Size())
		return
	}
	cut := st.Size() - good
	if cut > 0 {
		if err := f.Truncate(good); err != nil {
			rc.m.errors["recover"].Inc()
			rc.log.Warn("cannot cut torn dump", "file", part, "err", err)
			return
		}
	}
	if err := f.Sync(); err != nil {
		rc.m.errors["recover"].Inc()
		rc.log.Warn("cannot recover dump", "file", part, "err", err)
		return
	}
	final, err := rc.rename(part)
	if err != nil {
		rc.m.errors["recover"].Inc()
		rc.log.Warn("cannot recover dump", "file", part, "err", err)
		return
	}
	rc.m.recovered.Inc()
	attrs := []any{"file", final, "messages", msgs, "cut_bytes", cut}
	if why != nil {
		attrs = append(attrs, "cut_at", why)
	}
	rc.log.Info("dump recovered", attrs...)
}

// scanDump reads the messages of a dump until its end or its first bad
// message: good is the end of the last complete message.
func scanDump(r io.Reader) (good int64, msgs, data int, why error) {
	fr := ipfix.NewFileReader(r)
	for {
		msg, err := fr.Next()
		if err != nil {
			if err != io.EOF {
				why = err
			}
			return good, msgs, data, why
		}
		good = fr.Offset() + int64(len(msg))
		msgs++
		if hasDataSet(msg) {
			data++
		}
	}
}

// dumpInfo is a closed dump seen by retention.
type dumpInfo struct {
	path   string
	size   int64
	mtime  time.Time
	loaded bool
	name   dump.Name
}

// retention removes closed dumps of this receiver (in the stream directory
// and loaded/) older than max_age, then, oldest first and loaded ones before
// the others, until they total at most max_bytes. Closer goroutine.
func (rc *recorder) retention() {
	if rc.cfg.MaxBytes <= 0 && rc.cfg.MaxAge <= 0 {
		return
	}
	files := rc.listDumps(filepath.Join(rc.dir, dump.LoadedDir), true)
	files = append(files, rc.listDumps(rc.dir, false)...)
	slices.SortFunc(files, func(a, b dumpInfo) int {
		switch {
		case a.loaded != b.loaded:
			if a.loaded {
				return -1
			}
			return 1
		}
		if c := dump.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	var total int64
	for _, f := range files {
		total += f.size
	}
	now := rc.now()
	for _, f := range files {
		reason := ""
		switch {
		case rc.cfg.MaxAge > 0 && now.Sub(f.mtime) > rc.cfg.MaxAge:
			reason = "max_age"
		case rc.cfg.MaxBytes > 0 && total > rc.cfg.MaxBytes:
			reason = "max_bytes"
		default:
			continue
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			rc.closeFailed("remove", f.path, err)
			continue
		}
		total -= f.size
		rc.m.removed[reason].Inc()
		if f.loaded {
			rc.log.Debug("loaded dump removed", "file", f.path, "reason", reason)
		} else {
			rc.log.Warn("dump removed before it was loaded", "file", f.path, "reason", reason)
		}
	}
}

func (rc *recorder) listDumps(dir string, loaded bool) []dumpInfo {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []dumpInfo
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		n, err := dump.Parse(e.Name())
		if err != nil || n.Stream != rc.r.cfg.Stream || n.DPI != rc.r.cfg.DPI {
			continue // not a closed dump of this receiver
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, dumpInfo{path: filepath.Join(dir, e.Name()), size: info.Size(), mtime: info.ModTime(), loaded: loaded, name: n})
	}
	return out
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

// setKinds reports whether msg has data sets and template (or options
// template) sets, among the sets before a framing error.
func setKinds(msg []byte) (data, templates bool) {
	sum, _ := ipfix.Summarize(noTemplates, 0, msg)
	return sum.DataSets > 0, sum.TemplateSets > 0
}

// noTemplates is a template cache that stays empty, for walks that need the
// kinds of sets of a message and not its records. Only read.
var noTemplates = ipfix.NewTemplateCache(0)

func hasDataSet(msg []byte) bool { d, _ := setKinds(msg); return d }

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// globEscape quotes the glob metacharacters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
