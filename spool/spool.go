// Package spool keeps IPFIX messages on disk for a subreceiver that is down
// or slow, and gives them back oldest first for replay.
//
// One spool is one directory of segments (dump.Segment): self-contained IPFIX
// Files (RFC 5655) that start with the templates in force when they were
// opened, then hold the spooled messages byte for byte. Append never blocks:
// it copies the message into a bounded buffer that a writer goroutine writes
// to disk in large writes; a full buffer drops the message (counted). The
// consumer pulls with Next (never blocks: a reader goroutine reads ahead,
// bounded) and acknowledges with Ack; the position is persisted every second,
// every PersistMessages acknowledged messages and at each segment end, and a
// fully replayed segment is deleted.
//
// After a crash, torn segment tails are cut at the last complete message and
// the replay resumes from the persisted position: what was acknowledged since
// then is replayed again (counted as duplicates), nothing is lost. Close
// writes what is buffered and persists the position, so a successor opening
// the same directory resumes without duplicates.
//
// One process at a time owns a spool directory: New takes an exclusive flock
// on its LockFile, or, when another process holds it (the predecessor of a
// hand-over restart, which still drains), Run waits for it while Append
// buffers in memory; Close releases it last, after persisting the position.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/internal/atomicfile"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Drop says which end of a full spool loses messages.
type Drop int

const (
	// DropOldest deletes whole oldest segments to make room (default): a
	// flow store wants the recent past, the old one is the least useful.
	DropOldest Drop = iota
	// DropNewest refuses new messages while the spool is full.
	DropNewest
)

// String returns the config word.
func (d Drop) String() string {
	if d == DropNewest {
		return "newest"
	}
	return "oldest"
}

// ParseDrop parses config.Spool.Drop: "oldest" (or "", the default) or "newest".
func ParseDrop(s string) (Drop, error) {
	switch s {
	case "oldest", "":
		return DropOldest, nil
	case "newest":
		return DropNewest, nil
	}
	return 0, fmt.Errorf("drop %q: want oldest or newest", s)
}

// Config configures one spool. Zero values take the defaults.
type Config struct {
	Dir             string // the spool's own directory (dump.SpoolDir)
	MaxBytes        int64  // quota of segment bytes; 0 = no quota
	MinFreeBytes    int64  // keep this much free space on the filesystem; 0 = none
	Drop            Drop
	BufferBytes     int64         // Append buffer; default 8 MiB
	SegmentBytes    int64         // rotate segments at this size; default 64 MiB (at most MaxBytes/4)
	ReadAheadBytes  int64         // reader prefetch; default 4 MiB
	PersistEvery    time.Duration // default 1s
	PersistMessages int64         // default 4096
}

// Defaults.
const (
	DefaultBufferBytes     = 8 << 20
	DefaultSegmentBytes    = 64 << 20
	DefaultReadAheadBytes  = 4 << 20
	DefaultPersistEvery    = time.Second
	DefaultPersistMessages = 4096
	writeChunk             = 1 << 20
	minSegmentBytes        = 1 << 16
	syncBacklog            = 64 // closed segments waiting for their fsync (an open file each)
)

// Position is a place in a spool: a segment and a byte offset in it.
type Position struct {
	Segment uint64
	Offset  int64
}

func (p Position) before(q Position) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// Message is one message given by Next. Bytes is the caller's own copy: it
// may number it in place and keep it (to send it again after a reconnect).
// Templates marks a template message the spool added (the templates
// in force before the data that follows); End is where replay resumes after it.
type Message struct {
	Bytes     []byte
	Templates bool
	End       Position
	// spooled messages, duplicates and possible duplicates given so far,
	// this one included
	n, d, pd int64
}

type segment struct {
	dump.Segment
	path    string
	size    int64 // bytes written to the file
	msgs    int64 // spooled messages in the file (not the template prime)
	writing bool
}

// Spool is one spool directory. Append is for one goroutine (the receiver's
// event loop), Next and Ack for one goroutine (the consumer); the rest is safe
// for concurrent use.
type Spool struct {
	cfg Config
	log *slog.Logger
	m   *spoolMetrics

	qmu   sync.Mutex
	pend  []byte
	pendN int
	wake  chan struct{}
	tmpls []byte // template messages to learn first (Templates)

	mu      sync.Mutex
	segs    []*segment // by seq
	bytes   int64
	readSeq uint64   // segment the reader holds; 0 none
	rpos    Position // the end of what the reader gave
	nextSeq uint64
	flushed chan struct{} // closed and replaced after each flush

	quit, done chan struct{}
	ready      chan []Message
	batch      []Message
	bi         int
	acked      atomic.Pointer[Position]
	ackN       atomic.Int64
	lastD      int64
	lastPD     int64
	hintF      *os.File
	hint       Position // duplicates: acked before a crash (from AckFile)
	// possible duplicates: handed to a connection before a crash, not known
	// taken (from AckFile)
	hintHanded Position
	handed     Position // this run's: the consumer's, written with acks
	dupMode    bool
	running    bool
	closeOnce  sync.Once
	maxBytes   atomic.Int64 // Config.MaxBytes, SetLimits
	minFree    atomic.Int64
	drop       atomic.Int32
	posFailing atomic.Bool
	filling    bool

	lockF     *os.File
	loaded    chan struct{} // closed once the directory is locked and loaded
	abandoned chan struct{} // closed when Close gave up waiting for the lock
	broken    atomic.Bool   // the directory could not be loaded
	readable  chan struct{} // signalled when the reader hands out messages
	wbusy     bool          // under qmu: the writer holds a batch taken from pend
	queued    int           // under mu: messages handed to ready, not taken by Next
	replaying atomic.Bool   // SetReplaying
}

// New opens (creating) the spool directory of cfg, cuts torn segment tails
// and reads the position. labels are the metric labels ("stream=\"x\",...").
// It starts no goroutine: call Run.
func New(cfg Config, labels string, set *metrics.Set, log *slog.Logger) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: no dir")
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.MaxBytes > 0 && cfg.SegmentBytes > cfg.MaxBytes/4 {
		cfg.SegmentBytes = max(cfg.MaxBytes/4, minSegmentBytes)
	}
	if cfg.ReadAheadBytes <= 0 {
		cfg.ReadAheadBytes = DefaultReadAheadBytes
	}
	if cfg.PersistEvery <= 0 {
		cfg.PersistEvery = DefaultPersistEvery
	}
	if cfg.PersistMessages <= 0 {
		cfg.PersistMessages = DefaultPersistMessages
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	s := &Spool{cfg: cfg, log: log.With("spool", cfg.Dir), m: newMetrics(set, labels),
		wake: make(chan struct{}, 1), flushed: make(chan struct{}),
		quit: make(chan struct{}), done: make(chan struct{}),
		loaded: make(chan struct{}), abandoned: make(chan struct{}), readable: make(chan struct{}, 1),
		ready: make(chan []Message, max(1, cfg.ReadAheadBytes/writeChunk))}
	s.acked.Store(&Position{})
	s.SetLimits(cfg.MaxBytes, cfg.MinFreeBytes, cfg.Drop)
	var err error
	if s.lockF, err = os.OpenFile(filepath.Join(cfg.Dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	if dump.TryLock(s.lockF) != nil {
		// Another process (the predecessor of a hand-over restart) still
		// writes the directory: Run waits for its lock, Append buffers.
		s.log.Info("spool directory locked by another process, waiting for it")
		return s, nil
	}
	if err := s.load(); err != nil {
		_ = s.lockF.Close()
		return nil, err
	}
	close(s.loaded)
	return s, nil
}

// LockFile is the lock of a spool directory (flock): one process at a time
// reads and writes a spool, the hand-over successor after its predecessor
// closed it.
const LockFile = "lock"

// lockPoll is how often a spool waiting for its directory's lock tries again;
// closeLockWait bounds how long Close waits for it (then what Append buffered
// is dropped, counted as locked).
const (
	lockPoll      = 20 * time.Millisecond
	closeLockWait = 10 * time.Second
)

// load reads the position, cuts torn segment tails and lists the segments.
// The directory lock is held.
func (s *Spool) load() error {
	cfg := s.cfg
	pos, err := readPosition(filepath.Join(cfg.Dir, dump.PositionFile))
	if err != nil {
		return fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	if h, hd, err := readHint(filepath.Join(cfg.Dir, dump.AckFile)); err == nil && pos.before(hd) {
		s.hint, s.hintHanded, s.dupMode = h, hd, true
	}
	if s.hintF, err = os.OpenFile(filepath.Join(cfg.Dir, dump.AckFile), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	s.acked.Store(&pos)
	s.handed = pos
	s.mu.Lock()
	s.rpos = pos
	s.mu.Unlock()
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	var segs []*segment
	var bytes int64
	for _, e := range ents {
		n, err := dump.ParseSegment(e.Name())
		if err != nil {
			continue
		}
		path := filepath.Join(cfg.Dir, e.Name())
		if n.Seq < pos.Segment {
			_ = os.Remove(path) // replayed before the position was persisted
			continue
		}
		msgs, cut, err := dump.CutTail(path, n.Prime)
		if err != nil {
			return fmt.Errorf("spool %s: %w", cfg.Dir, err)
		}
		if cut {
			s.m.torn.Inc()
			s.log.Warn("spool segment torn tail cut", "file", path)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("spool %s: %w", cfg.Dir, err)
		}
		segs = append(segs, &segment{Segment: n, path: path, size: fi.Size(), msgs: msgs})
		bytes += fi.Size()
	}
	slices.SortFunc(segs, func(a, b *segment) int { return int(a.Seq - b.Seq) })
	s.mu.Lock()
	s.segs, s.bytes = segs, bytes
	s.nextSeq = pos.Segment + 1
	if len(s.segs) > 0 {
		s.nextSeq = max(s.nextSeq, s.segs[len(s.segs)-1].Seq+1)
	}
	s.mu.Unlock()
	s.gauges()
	return nil
}

// locker waits for the directory lock, then loads the spool; after Close it
// keeps trying for closeLockWait, so what Append buffered is still written.
func (s *Spool) locker() {
	var gaveUp <-chan time.Time
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		if dump.TryLock(s.lockF) == nil {
			if err := s.load(); err != nil {
				s.log.Error("spool load failed; dropping what comes", "err", err)
				s.broken.Store(true)
			} else {
				s.log.Info("spool directory lock taken")
			}
			close(s.loaded)
			return
		}
		select {
		case <-t.C:
		case <-s.quit:
			if gaveUp == nil {
				gaveUp = time.After(closeLockWait)
			}
			select {
			case <-t.C:
			case <-gaveUp:
				s.log.Error("spool directory still locked by another process at close; buffered messages dropped")
				close(s.abandoned)
				return
			}
		}
	}
}

// isLoaded reports whether the spool holds its directory.
func (s *Spool) isLoaded() bool {
	select {
	case <-s.loaded:
		return !s.broken.Load()
	default:
		return false
	}
}

// waitLoaded waits until the spool holds its directory, or quit (false).
func (s *Spool) waitLoaded() bool {
	select {
	case <-s.loaded:
		return !s.broken.Load()
	case <-s.quit:
		return false
	}
}

// Templates tells the spool the templates in force before the next appended
// message: msgs is a concatenation of template messages (ipfix
// TemplateCache.AppendTemplateMessages). Call it when spooling starts, before
// Append. Same goroutine as Append.
func (s *Spool) Templates(msgs []byte) {
	s.qmu.Lock()
	s.tmpls = append(s.tmpls, msgs...)
	s.qmu.Unlock()
	s.signal()
}

// Append copies msg (one checked IPFIX message) into the spool. It never
// blocks on disk; when the buffer is full msg is dropped and counted
// (reason buffer_full) and Append returns false; so is a message whose
// header length is not its length (reason malformed).
func (s *Spool) Append(msg []byte) bool {
	if len(msg) < ipfix.HeaderLen || len(msg) > ipfix.MaxMessageLen || int(binary.BigEndian.Uint16(msg[2:4])) != len(msg) {
		s.m.dropped["malformed"].Inc()
		return false
	}
	s.qmu.Lock()
	if int64(len(s.pend)+len(msg)) > s.cfg.BufferBytes {
		s.qmu.Unlock()
		s.m.dropped["buffer_full"].Inc()
		return false
	}
	s.pend = append(s.pend, msg...)
	s.pendN++
	s.qmu.Unlock()
	s.m.spooled.Inc()
	s.signal()
	return true
}

func (s *Spool) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Empty reports whether nothing waits for replay: no unacknowledged message
// in a segment and none buffered.
func (s *Spool) Empty() bool {
	s.qmu.Lock()
	n := s.pendN
	s.qmu.Unlock()
	if n > 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emptyLocked()
}

func (s *Spool) emptyLocked() bool {
	a := *s.acked.Load()
	for _, g := range s.segs {
		if g.Seq > a.Segment || g.Seq == a.Segment && g.size > max(a.Offset, g.Prime) {
			if g.msgs > 0 {
				return false
			}
		}
	}
	return true
}

// SetLimits changes the quota, the free-space floor and the drop end (a
// reload); they apply from the next batch the writer takes. A quota lowered
// below what the spool holds drops (DropOldest) or refuses (DropNewest) from
// then on. The segment size stays as New chose it. Safe for concurrent use.
func (s *Spool) SetLimits(maxBytes, minFreeBytes int64, drop Drop) {
	s.maxBytes.Store(maxBytes)
	s.minFree.Store(minFreeBytes)
	s.drop.Store(int32(drop))
}

// written returns the spooled messages in segments (tests).
func (s *Spool) written() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, g := range s.segs {
		n += g.msgs
	}
	return n
}

// Run starts the writer and the reader. It returns at once.
func (s *Spool) Run() {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(3)
	if !s.isLoaded() {
		select {
		case <-s.loaded:
		default:
			go s.locker()
		}
	}
	go func() { defer wg.Done(); s.writer() }()
	go func() { defer wg.Done(); s.reader() }()
	go func() { defer wg.Done(); s.persister() }()
	go func() { wg.Wait(); close(s.done) }()
}

// Close stops writing (what is buffered is written first), closes the current
// segment, persists the position and returns. A successor opening the same
// directory resumes the replay after the last acknowledged message.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.mu.Lock()
		running := s.running
		s.mu.Unlock()
		if running {
			<-s.done
		}
		if s.isLoaded() {
			// The reader has ended: the segment it held may go too.
			s.mu.Lock()
			s.readSeq = 0
			s.mu.Unlock()
			s.persist(true)
			_ = s.hintF.Close()
		}
		// The lock goes last: a successor waits for the position persisted.
		_ = s.lockF.Close()
	})
	return nil
}

// ---- writer ----

type writer struct {
	s     *Spool
	cache *ipfix.TemplateCache
	cur   *segment
	f     *os.File
	fail  bool
	sync  chan *os.File // closed segments to fsync and close
	tmp   []byte
}

func (s *Spool) writer() {
	w := &writer{s: s, cache: ipfix.NewTemplateCache(0), sync: make(chan *os.File, syncBacklog)}
	// A closed segment is fsynced apart, so a long fsync does not hold up
	// the writer (as the recorder's closer does for dumps). The backlog is
	// deep: with room for 4, the writer waited for the disk's write-back
	// once 4 segments were pending (bench/RESULTS.md, spool write rate).
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		for f := range w.sync {
			_ = f.Sync()
			_ = f.Close()
		}
	}()
	defer func() { close(w.sync); <-synced }()
	select {
	case <-s.loaded:
	case <-s.abandoned:
		s.dropPend("locked")
		return
	}
	if s.broken.Load() {
		for {
			select {
			case <-s.wake:
				s.dropPend("write_error")
			case <-s.quit:
				s.dropPend("write_error")
				return
			}
		}
	}
	var batch []byte
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		stop := false
		select {
		case <-s.wake:
		case <-tick.C:
			s.gauges()
		case <-s.quit:
			stop = true
		}
		s.qmu.Lock()
		batch, s.pend = s.pend, batch[:0]
		s.pendN = 0
		s.wbusy = len(batch) > 0
		tm := s.tmpls
		s.tmpls = nil
		s.qmu.Unlock()
		for b := tm; len(b) >= ipfix.HeaderLen; {
			n := int(binary.BigEndian.Uint16(b[2:4]))
			if n < ipfix.HeaderLen || n > len(b) {
				break
			}
			_, _ = w.cache.Learn(b[:n], time.Time{})
			b = b[n:]
		}
		if len(tm) > 0 && w.cur != nil {
			// Spooling starts again: what follows goes into a new segment,
			// whose prime carries these templates (a reader resuming there
			// after a restart needs them).
			w.closeSeg()
		}
		w.batch(batch)
		s.qmu.Lock()
		s.wbusy = false
		idle := s.pendN == 0
		s.qmu.Unlock()
		if idle && w.replayedAll() {
			// Drained: close the segment so that it is deleted like the
			// others (the next message opens a new one, primed with the
			// templates in force).
			w.closeSeg()
		}
		if stop {
			w.closeSeg()
			s.gauges()
			return
		}
	}
}

// dropPend drops what Append buffered, counted for reason.
func (s *Spool) dropPend(reason string) {
	s.qmu.Lock()
	n := s.pendN
	s.pend, s.pendN, s.tmpls = s.pend[:0], 0, nil
	s.qmu.Unlock()
	s.m.dropped[reason].Add(n)
}

func (w *writer) batch(b []byte) {
	s := w.s
	if len(b) == 0 {
		return
	}
	maxBytes, minFree := s.maxBytes.Load(), s.minFree.Load()
	if minFree > 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.cfg.Dir, &st); err == nil {
			free := int64(st.Bavail) * int64(st.Bsize)
			if need := minFree - (free - int64(len(b))); need > 0 {
				if !w.makeRoom(need) {
					w.dropAll(b, "disk_floor")
					return
				}
			}
		}
	}
	// Messages are written from the batch itself, in runs of consecutive
	// kept messages: no second copy.
	s.mu.Lock()
	used := s.bytes
	s.mu.Unlock()
	rs, re, runN := 0, 0, int64(0)
	flushRun := func() {
		if re > rs {
			w.write(b[rs:re], runN)
			s.mu.Lock()
			used = s.bytes
			s.mu.Unlock()
		}
		rs, runN = re, 0
	}
	for off := 0; off+ipfix.HeaderLen <= len(b); {
		n := int(binary.BigEndian.Uint16(b[off+2 : off+4]))
		msg := b[off : off+n]
		// Learn what carries templates; a message of one data set (the
		// common case) needs no walk.
		if len(msg) < ipfix.HeaderLen+ipfix.SetHeaderLen ||
			binary.BigEndian.Uint16(msg[ipfix.HeaderLen:]) < ipfix.MinDataSetID ||
			len(msg) > ipfix.HeaderLen+int(binary.BigEndian.Uint16(msg[ipfix.HeaderLen+2:])) {
			_, _ = w.cache.Learn(msg, time.Time{})
		}
		skip := func(reason string) {
			flushRun()
			s.m.dropped[reason].Inc()
			off += n
			rs, re = off, off
		}
		if maxBytes > 0 {
			if over := used + int64(re-rs) + int64(n) - maxBytes; over > 0 {
				flushRun()
				if !w.makeRoom(over) {
					skip("quota")
					continue
				}
				s.mu.Lock()
				used = s.bytes
				s.mu.Unlock()
			}
		}
		if w.cur != nil && w.cur.size+int64(re-rs)+int64(n) > s.cfg.SegmentBytes {
			flushRun()
			w.closeSeg()
		}
		if w.cur == nil {
			if err := w.open(msg); err != nil {
				skip(reason(err))
				continue
			}
		}
		re += n
		runN++
		off += n
		if re-rs >= writeChunk {
			flushRun()
		}
	}
	flushRun()
}

func (w *writer) dropAll(b []byte, reason string) {
	n := 0
	for len(b) >= ipfix.HeaderLen {
		l := int(binary.BigEndian.Uint16(b[2:4]))
		_, _ = w.cache.Learn(b[:l], time.Time{})
		b = b[l:]
		n++
	}
	w.s.m.dropped[reason].Add(n)
}

// makeRoom deletes oldest segments (DropOldest) until need bytes are freed;
// it never deletes the segment being read or written.
func (w *writer) makeRoom(need int64) bool {
	s := w.s
	if Drop(s.drop.Load()) != DropOldest {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for need > 0 {
		i := slices.IndexFunc(s.segs, func(g *segment) bool { return !g.writing && g.Seq != s.readSeq })
		if i < 0 {
			return false
		}
		g := s.segs[i]
		// The reader holds the segment it reads and has read those before
		// (their messages are given or acknowledged), so only the messages
		// of a segment after its position are lost.
		switch a := s.rpos; {
		case g.Seq > a.Segment:
			s.m.dropped["quota_oldest"].Add(int(g.msgs))
		case g.Seq == a.Segment && a.Offset < g.size:
			n, _, _, _ := dump.Scan(g.path, max(a.Offset, g.Prime))
			s.m.dropped["quota_oldest"].Add(int(n))
		}
		if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false
		}
		s.segs = slices.Delete(s.segs, i, i+1)
		s.bytes -= g.size
		need -= g.size
	}
	return true
}

// reason is the drop reason of a write error.
func reason(err error) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return "disk_full"
	}
	return "write_error"
}

func (w *writer) open(first []byte) error {
	s := w.s
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	w.tmp = w.tmp[:0]
	et, sq := binary.BigEndian.Uint32(first[4:8]), binary.BigEndian.Uint32(first[8:12])
	for _, d := range w.cache.Domains() {
		w.tmp = w.cache.AppendTemplateMessages(w.tmp, d, et, sq, ipfix.MaxMessageLen)
	}
	n := dump.Segment{Seq: seq, Opened: time.Now().UTC().Truncate(time.Microsecond), Prime: int64(len(w.tmp))}
	path := filepath.Join(s.cfg.Dir, n.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		w.failed("open", err)
		return err
	}
	if _, err := f.Write(w.tmp); err != nil {
		f.Close()
		os.Remove(path)
		w.failed("write", err)
		return err
	}
	w.f = f
	w.cur = &segment{Segment: n, path: path, size: int64(len(w.tmp)), writing: true}
	s.mu.Lock()
	s.segs = append(s.segs, w.cur)
	s.bytes += w.cur.size
	s.mu.Unlock()
	return nil
}

func (w *writer) failed(op string, err error) {
	if !w.fail {
		w.fail = true
		w.s.log.Error("spool write failed; dropping until it works again", "op", op, "err", err)
	}
}

// write writes p, msgs whole messages, to the current segment.
func (w *writer) write(p []byte, msgs int64) {
	s := w.s
	n, err := w.f.Write(p)
	if err != nil {
		// ENOSPC and the like: cut back to the last complete message, drop
		// what did not fit, keep going.
		_ = w.f.Truncate(w.cur.size)
		_, _ = w.f.Seek(w.cur.size, 0)
		s.m.dropped[reason(err)].Add(int(msgs))
		w.failed("write", err)
		return
	}
	if w.fail {
		w.fail = false
		s.log.Info("spool writes resumed")
	}
	s.mu.Lock()
	w.cur.size += int64(n)
	w.cur.msgs += msgs
	s.bytes += int64(n)
	close(s.flushed)
	s.flushed = make(chan struct{})
	if !s.filling {
		s.filling = true
		s.log.Info("spool filling")
	}
	s.mu.Unlock()
}

// replayedAll reports whether the segment being written is acknowledged to
// its end.
func (w *writer) replayedAll() bool {
	if w.cur == nil {
		return false
	}
	a := *w.s.acked.Load()
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return a.Segment == w.cur.Seq && a.Offset >= w.cur.size
}

func (w *writer) closeSeg() {
	if w.cur == nil {
		return
	}
	w.sync <- w.f
	w.s.mu.Lock()
	w.cur.writing = false
	close(w.s.flushed)
	w.s.flushed = make(chan struct{})
	w.s.mu.Unlock()
	w.cur, w.f = nil, nil
}

// ---- reader ----

func (s *Spool) reader() {
	if !s.waitLoaded() {
		return
	}
	var (
		g     *segment
		f     *os.File
		off   int64
		buf   = make([]byte, writeChunk+ipfix.MaxMessageLen)
		have  int
		nOrig int64
		nDup  int64
		nPD   int64
		rpos  = *s.acked.Load() // where the reader goes on: the end of what it gave
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		s.mu.Lock()
		wait := s.flushed
		if g == nil {
			a := rpos
			for _, c := range s.segs {
				if c.Seq > a.Segment || c.Seq == a.Segment && (c.writing || a.Offset < c.size) {
					g = c
					break
				}
			}
			if g != nil {
				s.readSeq = g.Seq
			}
		}
		var size int64
		var writing bool
		if g != nil {
			size, writing = g.size, g.writing
		}
		s.mu.Unlock()
		if g != nil && f == nil {
			var err error
			if f, err = os.Open(g.path); err != nil {
				s.log.Error("spool segment open", "file", g.path, "err", err)
				s.mu.Lock()
				s.segs = slices.DeleteFunc(s.segs, func(c *segment) bool { return c == g })
				s.readSeq = 0
				s.mu.Unlock()
				g = nil
				continue
			}
			a := rpos
			off, have = 0, 0
			if a.Segment == g.Seq && a.Offset > g.Prime {
				// Resume inside the segment: give the templates in force there.
				tm, err := templatesAt(g.path, a.Offset)
				if err != nil {
					s.log.Error("spool segment templates", "file", g.path, "err", err)
				}
				if len(tm) > 0 {
					s.mu.Lock()
					s.queued++
					s.mu.Unlock()
					if !s.send([]Message{{Bytes: tm, Templates: true, End: a, n: nOrig, d: nDup, pd: nPD}}) {
						return
					}
				}
				off = a.Offset
			}
		}
		if g != nil && off+int64(have) < size {
			n, err := f.ReadAt(buf[have:min(len(buf), have+int(size-off-int64(have)))], off+int64(have))
			have += n
			if err != nil && n == 0 {
				s.log.Error("spool segment read", "file", g.path, "err", err)
			}
			var out []Message
			p := 0
			for have-p >= ipfix.HeaderLen {
				l := int(binary.BigEndian.Uint16(buf[p+2 : p+4]))
				if l < ipfix.HeaderLen || have-p < l {
					break
				}
				m := Message{Bytes: slices.Clone(buf[p : p+l]), Templates: off+int64(p) < g.Prime,
					End: Position{g.Seq, off + int64(p+l)}}
				if !m.Templates {
					nOrig++
					switch {
					case !s.dupMode:
					case !s.hint.before(m.End):
						nDup++
					case !s.hintHanded.before(m.End):
						nPD++
					}
				}
				m.n, m.d, m.pd = nOrig, nDup, nPD
				out = append(out, m)
				p += l
			}
			copy(buf, buf[p:have])
			have -= p
			off += int64(p)
			rpos = Position{g.Seq, off}
			s.mu.Lock()
			s.rpos = rpos
			s.queued += len(out)
			s.mu.Unlock()
			if len(out) > 0 && !s.send(out) {
				return
			}
			continue
		}
		if g != nil && !writing && off+int64(have) >= size {
			f.Close()
			f, g = nil, nil
			s.mu.Lock()
			s.readSeq = 0
			s.mu.Unlock()
			continue
		}
		select {
		case <-s.quit:
			return
		case <-wait:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Spool) send(b []Message) bool {
	select {
	case s.ready <- b:
		select {
		case s.readable <- struct{}{}:
		default:
		}
		return true
	case <-s.quit:
		return false
	}
}

// templatesAt returns template messages carrying the templates in force at
// offset off of the segment at path.
func templatesAt(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := ipfix.NewTemplateCache(0)
	fr := ipfix.NewFileReader(f)
	var et, sq uint32
	for {
		msg, err := fr.Next()
		if err != nil || fr.Offset() >= off {
			break
		}
		et, sq = binary.BigEndian.Uint32(msg[4:8]), binary.BigEndian.Uint32(msg[8:12])
		_, _ = c.Learn(msg, time.Time{})
	}
	var out []byte
	for _, d := range c.Domains() {
		out = c.AppendTemplateMessages(out, d, et, sq, ipfix.MaxMessageLen)
	}
	return out, nil
}

// Next returns the next message to replay, oldest first, without blocking;
// ok is false when none is ready now. A Templates message may hold several
// template messages back to back. Consumer goroutine only.
func (s *Spool) Next() (m Message, ok bool) {
	if s.bi >= len(s.batch) {
		select {
		case b := <-s.ready:
			s.batch, s.bi = b, 0
			s.mu.Lock()
			s.queued -= len(b)
			s.mu.Unlock()
		default:
			return Message{}, false
		}
	}
	m = s.batch[s.bi]
	s.bi++
	return m, true
}

// Readable is signalled (capacity 1) each time the reader has messages
// ready for Next: the consumer's wake-up.
func (s *Spool) Readable() <-chan struct{} { return s.readable }

// Drained reports whether Next has given every message of the spool: none is
// buffered by Append, being written, in a segment and not read yet, or read
// ahead and not taken. Unlike Empty it does not wait for Ack: the consumer
// that sent everything Next gave may send live messages after them.
// Consumer goroutine only; with Append on the same goroutine, the answer
// holds until the next Append.
func (s *Spool) Drained() bool {
	if s.bi < len(s.batch) || !s.isLoaded() {
		return false
	}
	s.qmu.Lock()
	busy := s.pendN > 0 || s.wbusy
	s.qmu.Unlock()
	if busy {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued > 0 {
		return false
	}
	r := s.rpos
	for _, g := range s.segs {
		if g.Seq > r.Segment && g.msgs > 0 || g.Seq == r.Segment && g.size > max(r.Offset, g.Prime) {
			return false
		}
	}
	return true
}

// Ack acknowledges m and every message given by Next before it: the
// subreceiver took them, and replay resumes after m. It writes the position
// to dump.AckFile (one pwrite, no fsync: it survives a kill -9, so the
// duplicates replayed after one are counted), so call it once per batch
// taken, not per message. Consumer goroutine only.
func (s *Spool) Ack(m Message) {
	p := m.End
	s.acked.Store(&p)
	if s.handed.before(p) {
		s.handed = p
	}
	s.writeHint()
	if dn := m.n - s.ackN.Load(); dn > 0 {
		s.ackN.Store(m.n)
		s.m.replayed.Add(int(dn))
	}
	if dd := m.d - s.lastD; dd > 0 {
		s.lastD = m.d
		s.m.duplicates.Add(int(dd))
	}
	if dd := m.pd - s.lastPD; dd > 0 {
		s.lastPD = m.pd
		s.m.possibleDuplicates.Add(int(dd))
	}
}

// Handed tells the spool that m and every message given before it are being
// handed to the connection: from now on a crash may have delivered them
// although they are not acknowledged (the kernel takes part of a write at
// once, the rest later, and the consumer learns it later still). Replayed
// again after a crash, they count as possible duplicates. Call it before the
// write, once per batch. Consumer goroutine only.
func (s *Spool) Handed(m Message) {
	if s.handed.before(m.End) {
		s.handed = m.End
		s.writeHint()
	}
}

// writeHint writes the acknowledged and the handed positions to
// dump.AckFile: one pwrite of a fixed-size record, no fsync.
func (s *Spool) writeHint() {
	var rec [96]byte
	b := appendPosition(append(appendPosition(rec[:0], *s.acked.Load()), ' '), s.handed)
	for len(b) < len(rec)-1 {
		b = append(b, ' ')
	}
	b = append(b, '\n')
	_, _ = s.hintF.WriteAt(b, 0)
}

// persister persists the acknowledged position every PersistEvery, every
// PersistMessages acknowledged messages and when replay enters a new segment.
func (s *Spool) persister() {
	if !s.waitLoaded() {
		return
	}
	tick := time.NewTicker(min(s.cfg.PersistEvery, 20*time.Millisecond))
	defer tick.Stop()
	lastP, lastN, lastS := time.Now(), s.ackN.Load(), s.acked.Load().Segment
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		if a := s.acked.Load(); time.Since(lastP) >= s.cfg.PersistEvery ||
			s.ackN.Load()-lastN >= s.cfg.PersistMessages || a.Segment != lastS {
			s.persist(false)
			lastP, lastN, lastS = time.Now(), s.ackN.Load(), a.Segment
		}
	}
}

// persist writes the acknowledged position (fsync, atomic rename) and
// deletes the segments replayed in full.
func (s *Spool) persist(final bool) {
	a := *s.acked.Load()
	s.mu.Lock()
	var gone []*segment
	for _, g := range s.segs {
		if !g.writing && (g.Seq < a.Segment || g.Seq == a.Segment && a.Offset >= g.size) && g.Seq != s.readSeq {
			gone = append(gone, g)
		}
	}
	s.mu.Unlock()
	// Segments first: on a full disk, the space they free lets the position
	// be written. A crash in between resumes at the next segment, which
	// is where the position would have said.
	s.mu.Lock()
	for _, g := range gone {
		_ = os.Remove(g.path)
		s.segs = slices.DeleteFunc(s.segs, func(c *segment) bool { return c == g })
		s.bytes -= g.size
	}
	s.mu.Unlock()
	if err := writePosition(s.cfg.Dir, a); err != nil {
		// A full disk fails this every second: log the first one.
		if !s.posFailing.Swap(true) {
			s.log.Error("spool position write failed", "err", err)
		}
	} else if s.posFailing.Swap(false) {
		s.log.Info("spool position written again")
	}
	s.mu.Lock()
	if s.filling && s.emptyLocked() {
		s.filling = false
		s.log.Info("spool drained")
	}
	s.mu.Unlock()
	s.gauges()
}

// appendPosition appends p as "<segment> <offset>", the form of
// dump.PositionFile and of each half of dump.AckFile (parsePosition).
func appendPosition(b []byte, p Position) []byte {
	b = strconv.AppendUint(b, p.Segment, 10)
	return strconv.AppendInt(append(b, ' '), p.Offset, 10)
}

func fmtPosition(p Position) []byte { return append(appendPosition(nil, p), '\n') }

func writePosition(dir string, p Position) error {
	return atomicfile.Replace(filepath.Join(dir, dump.PositionFile), fmtPosition(p), 0o644)
}

// readHint reads dump.AckFile: the acknowledged position, then the handed
// one (a file written before there was one holds the first alone).
func readHint(path string) (acked, handed Position, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Position{}, Position{}, err
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		f = append(f, f...)
	}
	if len(f) != 4 {
		return Position{}, Position{}, fmt.Errorf("%s: %q is not \"<segment> <offset> <segment> <offset>\"", path, b)
	}
	if acked, err = parsePosition(path, f[:2]); err == nil {
		handed, err = parsePosition(path, f[2:])
	}
	if handed.before(acked) {
		handed = acked
	}
	return acked, handed, err
}

func readPosition(path string) (Position, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, nil
	}
	if err != nil {
		return Position{}, err
	}
	return parsePosition(path, strings.Fields(string(b)))
}

func parsePosition(path string, f []string) (Position, error) {
	if len(f) != 2 {
		return Position{}, fmt.Errorf("%s: %q is not \"<segment> <offset>\"", path, strings.Join(f, " "))
	}
	seg, err1 := strconv.ParseUint(f[0], 10, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("%s: %q is not \"<segment> <offset>\"", path, strings.Join(f, " "))
	}
	return Position{seg, off}, nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.cfg.Dir }

// HasSegments reports whether the directory holds a segment now, whoever
// wrote it: before the spool has its lock, whether the process holding it
// (a hand-over predecessor) may leave messages in it. It reads the directory.
func (s *Spool) HasSegments() bool {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if _, err := dump.ParseSegment(e.Name()); err == nil {
			return true
		}
	}
	return false
}

// Loaded reports whether the spool holds its directory's lock and has read
// it (see LockFile).
func (s *Spool) Loaded() bool { return s.isLoaded() }

// SetReplaying tells the spool whether its consumer routes the live stream
// through it (from the first spooled message until the replay caught up):
// the replaying gauge is 1 then, and while messages wait for replay. Safe for
// concurrent use.
func (s *Spool) SetReplaying(on bool) {
	if s.replaying.Swap(on) != on && s.isLoaded() {
		s.gauges()
	}
}
