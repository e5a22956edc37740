package dict

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// SampleFile is the pattern file each dictionary directory ships with. It is
// never loaded: an operator copies it to another .txt file and edits that.
const SampleFile = "sample.txt"

// Set is one version of every dictionary. Immutable; safe for concurrent
// use. A dictionary without files is present and empty.
type Set struct {
	dicts [len(specNames)]*Dict
}

var specNames = [...]string{AsnumLocal, AsnumExclude, SubnetsLocal, SubnetsExclude, Subscribers, Switches, CRC, URLCats, URLCatsHost, VChannelName}

func init() {
	if len(Specs) != len(specNames) {
		panic("BUG: Specs and specNames differ")
	}
	for i, s := range Specs {
		if s.Name != specNames[i] {
			panic("BUG: Specs and specNames differ at " + s.Name)
		}
	}
}

// EmptySet returns a Set of empty dictionaries.
func EmptySet() *Set {
	s := &Set{}
	for i := range Specs {
		d, err := build(&Specs[i], nil, nil)
		if err != nil {
			panic("BUG: empty dictionary: " + err.Error())
		}
		s.dicts[i] = d
	}
	return s
}

// Dict returns the dictionary called name; it panics on an unknown name.
func (s *Set) Dict(name string) *Dict {
	for i, n := range specNames {
		if n == name {
			return s.dicts[i]
		}
	}
	panic("BUG: unknown dictionary " + name)
}

// The dictionaries by name, for the code that reads them per row.
func (s *Set) AsnumLocal() *Dict     { return s.dicts[0] }
func (s *Set) AsnumExclude() *Dict   { return s.dicts[1] }
func (s *Set) SubnetsLocal() *Dict   { return s.dicts[2] }
func (s *Set) SubnetsExclude() *Dict { return s.dicts[3] }
func (s *Set) Subscribers() *Dict    { return s.dicts[4] }
func (s *Set) Switches() *Dict       { return s.dicts[5] }
func (s *Set) CRC() *Dict            { return s.dicts[6] }
func (s *Set) URLCats() *Dict        { return s.dicts[7] }
func (s *Set) URLCatsHost() *Dict    { return s.dicts[8] }
func (s *Set) VChannelNames() *Dict  { return s.dicts[9] }

// with returns a copy of s with d in place of its dictionary.
func (s *Set) with(d *Dict) *Set {
	n := *s
	for i, name := range specNames {
		if name == d.Spec.Name {
			n.dicts[i] = d
			return &n
		}
	}
	panic("BUG: unknown dictionary " + d.Spec.Name)
}

// ReadDir reads dictionary name from <dir>/<name>/: every regular file whose
// name ends in .txt, except sample.txt and hidden files, in name order, as
// one dictionary. A missing directory is an empty dictionary. The first bad
// line refuses the whole dictionary with a *LineError (file:line).
func ReadDir(dir, name string) (*Dict, error) {
	s := SpecOf(name)
	if s == nil {
		return nil, fmt.Errorf("dictionary %q: unknown (want one of %s)", name, strings.Join(specNames[:], ", "))
	}
	files, err := listFiles(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return readFiles(s, files)
}

func readFiles(s *Spec, files []fileInfo) (*Dict, error) {
	h := sha256.New()
	var rows [][]string
	type span struct {
		path      string
		firstRow  int
		lineOfRow []int32
	}
	var spans []span
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("dictionary %s: %w", s.Name, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f.path), len(b))
		h.Write(b)
		sp := span{path: f.path, firstRow: len(rows)}
		rows, err = s.parseFile(f.path, string(b), rows, &sp.lineOfRow)
		if err != nil {
			return nil, err
		}
		spans = append(spans, sp)
	}
	where := func(row int) (string, int) {
		for i := len(spans) - 1; i >= 0; i-- {
			if row >= spans[i].firstRow {
				return spans[i].path, int(spans[i].lineOfRow[row-spans[i].firstRow])
			}
		}
		return "", 0
	}
	d, err := build(s, rows, where)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		d.Files = append(d.Files, f.path)
	}
	d.Hash = hex.EncodeToString(h.Sum(nil))
	return d, nil
}

type fileInfo struct {
	path  string
	size  int64
	mtime int64
}

// listFiles lists the .txt files of a dictionary directory, sorted.
func listFiles(dir string) ([]fileInfo, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []fileInfo
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".txt") || n == SampleFile || strings.HasPrefix(n, ".") {
			continue
		}
		path := filepath.Join(dir, n)
		st, err := os.Stat(path) // follows symlinks, as an operator's link to a shared file expects
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while listing
			}
			return nil, err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		out = append(out, fileInfo{path, st.Size(), st.ModTime().UnixNano()})
	}
	slices.SortFunc(out, func(a, b fileInfo) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

func fingerprint(files []fileInfo) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString(f.path)
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(f.size, 10))
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(f.mtime, 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// Config configures a Watcher.
type Config struct {
	// Dir holds one directory per dictionary (<Dir>/subnets_local_dic/*.txt);
	// the legacy collector's was /var/qoestor/backend/etc/db.
	Dir string
	// PollEvery is how often the files are checked for changes (default 2s).
	PollEvery time.Duration
	// Publish, when set, is called with each newly loaded dictionary (and at
	// the first load, with every one), e.g. to replace its ClickHouse table.
	// An error is counted and the call is repeated at the next poll until it
	// succeeds or a newer version replaces it.
	Publish func(ctx context.Context, d *Dict) error
	// Metrics, when set, receives the watcher's metrics (the loader's own
	// set); otherwise the watcher has a set of its own.
	Metrics *metrics.Set
}

// DefaultPollEvery is the default of Config.PollEvery.
const DefaultPollEvery = 2 * time.Second

// rehashEvery is how often unchanged-looking files are read and hashed anyway.
var rehashEvery = time.Minute // a variable for tests

// Watcher keeps the dictionaries of a directory loaded: it polls the files'
// names, sizes and modification times, reads a dictionary whose files
// changed, and when their content hash differs and every line parses,
// swaps in a new Set. A dictionary with a bad line is refused (logged with
// file:line, counted) and its previous version stays in force. Readers call
// Current, which never blocks.
type Watcher struct {
	cfg Config
	log *slog.Logger
	cur atomic.Pointer[Set]
	m   *watchMetrics

	mu      sync.Mutex           // one poll at a time
	seen    map[string]string    // dictionary -> fingerprint of the files last read
	readAt  map[string]time.Time // dictionary -> when its files were last read
	refused map[string]error     // dictionary -> why its files' current version is refused
	pending map[string]*Dict     // dictionaries still to publish
}

// New returns an inert Watcher holding empty dictionaries until Load or Run.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("dictionaries: dir: empty")
	}
	if cfg.PollEvery == 0 {
		cfg.PollEvery = DefaultPollEvery
	}
	if cfg.PollEvery < 0 {
		return nil, fmt.Errorf("dictionaries: poll_every: %v: want > 0", cfg.PollEvery)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{cfg: cfg, log: log, m: newWatchMetrics(cfg.Metrics), seen: map[string]string{}, readAt: map[string]time.Time{}, refused: map[string]error{}, pending: map[string]*Dict{}}
	w.cur.Store(EmptySet())
	return w, nil
}

// Current returns the dictionaries in force. Safe for concurrent use; it
// never blocks.
func (w *Watcher) Current() *Set { return w.cur.Load() }

// Refused returns why the current files of dictionary name are refused, nil
// when its files are in force.
func (w *Watcher) Refused(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused[name]
}

// Metrics returns the watcher's metric set (register it to expose it).
func (w *Watcher) Metrics() *metrics.Set { return w.m.set }

// Load checks every dictionary once, loads what changed and publishes what
// is pending. It returns the refused dictionaries' errors, joined; the
// dictionaries that loaded are in force even then.
func (w *Watcher) Load(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i := range Specs {
		s := &Specs[i]
		if err := w.loadOne(s); err != nil {
			errs = append(errs, err)
		}
	}
	if w.cfg.Publish != nil {
		for _, name := range specNames {
			d := w.pending[name]
			if d == nil {
				continue
			}
			if err := w.cfg.Publish(ctx, d); err != nil {
				w.m.errors[name][kindPublish].Inc()
				w.log.Warn("dictionary not published", "dictionary", name, "err", err)
				errs = append(errs, fmt.Errorf("dictionary %s: publish: %w", name, err))
				continue
			}
			delete(w.pending, name)
		}
	}
	return errors.Join(errs...)
}

func (w *Watcher) loadOne(s *Spec) error {
	files, err := listFiles(filepath.Join(w.cfg.Dir, s.Name))
	fp := fingerprint(files)
	if err != nil {
		fp = "\x00" + err.Error()
	}
	// Unchanged names, sizes and times: nothing to read, except once every
	// rehashEvery, for file systems whose times are too coarse to see an
	// edit that keeps the size (the content hash decides then).
	prev, known := w.seen[s.Name]
	unchanged := known && prev == fp
	if unchanged && time.Since(w.readAt[s.Name]) < rehashEvery {
		return w.refused[s.Name] // still in force, or still refused
	}
	w.seen[s.Name] = fp
	w.readAt[s.Name] = time.Now()
	wasRefused := w.refused[s.Name] != nil
	delete(w.refused, s.Name)
	var d *Dict
	if err == nil {
		d, err = readFiles(s, files)
	}
	if err != nil {
		// Counted once per version of the files: the next polls see the
		// same fingerprint and stay quiet until the files change.
		kind := kindIO
		var le *LineError
		if errors.As(err, &le) {
			kind = kindParse
		}
		if !unchanged || !wasRefused {
			w.m.errors[s.Name][kind].Inc()
			w.log.Warn("dictionary refused, previous version stays", "dictionary", s.Name, "err", err)
		}
		err = fmt.Errorf("dictionary %s: %w", s.Name, err)
		w.refused[s.Name] = err
		return err
	}
	cur := w.cur.Load()
	if cur.Dict(s.Name).Hash == d.Hash {
		return nil // touched, not changed
	}
	w.cur.Store(cur.with(d))
	w.pending[s.Name] = d
	w.m.loads[s.Name].Inc()
	w.m.entries[s.Name].Store(int64(d.Len()))
	w.m.lastLoad[s.Name].Store(time.Now().Unix())
	w.log.Info("dictionary loaded", "dictionary", s.Name, "rows", d.Len(), "files", len(d.Files))
	return nil
}

// Run loads the dictionaries, then polls them every PollEvery until ctx
// ends. Refused dictionaries are logged and counted, never fatal.
func (w *Watcher) Run(ctx context.Context) error {
	_ = w.Load(ctx)
	t := time.NewTicker(w.cfg.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = w.Load(ctx)
		}
	}
}

// Error kinds of ipfix_loader_dictionary_errors_total.
const (
	kindParse   = "parse"   // a bad line: the version is refused
	kindIO      = "io"      // a file could not be listed or read
	kindPublish = "publish" // the ClickHouse table could not be replaced (retried)
)

type watchMetrics struct {
	set      *metrics.Set
	errors   map[string]map[string]*metrics.Counter
	loads    map[string]*metrics.Counter
	entries  map[string]*atomic.Int64
	lastLoad map[string]*atomic.Int64
}

func newWatchMetrics(s *metrics.Set) *watchMetrics {
	if s == nil {
		s = metrics.NewSet()
	}
	m := &watchMetrics{set: s, errors: map[string]map[string]*metrics.Counter{}, loads: map[string]*metrics.Counter{},
		entries: map[string]*atomic.Int64{}, lastLoad: map[string]*atomic.Int64{}}
	for _, name := range specNames {
		l := fmt.Sprintf(`dictionary=%q`, name)
		m.errors[name] = map[string]*metrics.Counter{}
		for _, k := range []string{kindParse, kindIO, kindPublish} {
			m.errors[name][k] = s.NewCounter(fmt.Sprintf(`ipfix_loader_dictionary_errors_total{%s,kind=%q}`, l, k))
		}
		m.loads[name] = s.NewCounter(`ipfix_loader_dictionary_loads_total{` + l + `}`)
		e, t := &atomic.Int64{}, &atomic.Int64{}
		m.entries[name], m.lastLoad[name] = e, t
		s.NewGauge(`ipfix_loader_dictionary_rows{`+l+`}`, func() float64 { return float64(e.Load()) })
		s.NewGauge(`ipfix_loader_dictionary_last_load_timestamp_seconds{`+l+`}`, func() float64 { return float64(t.Load()) })
	}
	return m
}
