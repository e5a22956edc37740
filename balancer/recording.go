package balancer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
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
//
// Its three parts, one file each: the queue the event loop fills (here),
// the writer goroutine (recording_writer.go) and the closer goroutine
// (recording_closer.go); the on-disk contract is package dump's.
type recorder struct {
	r      *Receiver
	cfg    config.Recorder
	dir    string // <Dir>/<stream>
	stream string // the receiver's, copied: a reload rewrites r.cfg on the loop while the writer names dumps
	dpi    int
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
		stream:    r.cfg.Stream,
		dpi:       r.cfg.DPI,
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
