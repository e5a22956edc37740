package dump

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Suffixes and directories of the contract.
const (
	// Ext ends the name of every dump, closed or not.
	Ext = ".ipfix"
	// PartSuffix follows Ext while the dump is being written; only a closed
	// dump (complete, fsynced) has a name ending in Ext.
	PartSuffix = ".part"
	// LoadedDir, in a stream directory, holds the dumps the loader loaded
	// (after_load = "move"); recorder retention removes them first.
	LoadedDir = "loaded"
	// BadDir, in a stream directory, holds the dumps the loader could not
	// load, each with a <name>.why sidecar.
	BadDir = "bad"

	// WindowLayout is the time layout of a window (UTC, to the second).
	WindowLayout = "20060102T150405Z"
	// OpenedLayout is the time layout of an open time (UTC, to the microsecond).
	OpenedLayout = "20060102T150405.000000Z"
	// InstanceLen is the length of an instance id.
	InstanceLen = 6
)

// Name is the name of a dump file, without directory and without PartSuffix.
// The zero Opened and an empty Instance mark a name written by an older
// version (Legacy), whose Suffix ("_1", "_r2", "-x", ".x" or "") is kept so
// that String gives the name back as it was.
type Name struct {
	Stream   string
	DPI      int
	Window   time.Time // start of the rotation window, UTC
	Opened   time.Time // when the file was opened, UTC, to the microsecond
	Instance string    // id of the writing process, InstanceLen base32 letters
	Suffix   string    // legacy names only
}

// String returns the file name: S_D_<window>_<opened>_<instance>.ipfix.
func (n Name) String() string {
	b := make([]byte, 0, 64)
	b = append(b, n.Stream...)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(n.DPI), 10)
	b = append(b, '_')
	b = n.Window.UTC().AppendFormat(b, WindowLayout)
	if n.Legacy() {
		b = append(b, n.Suffix...)
	} else {
		b = append(b, '_')
		b = n.Opened.UTC().AppendFormat(b, OpenedLayout)
		b = append(b, '_')
		b = append(b, n.Instance...)
	}
	return string(append(b, Ext...))
}

// Part returns the name of the dump while it is written.
func (n Name) Part() string { return n.String() + PartSuffix }

// Legacy reports whether the name comes from an older version: it has no
// open time nor instance, and another dump may have had the same name.
func (n Name) Legacy() bool { return n.Instance == "" }

// Seq is the number of a legacy name's _<n> or _r<n> suffix, else 0.
func (n Name) Seq() int {
	s := strings.TrimPrefix(strings.TrimPrefix(n.Suffix, "_"), "r")
	v, _ := strconv.Atoi(s)
	return v
}

// Compare orders names as they were written: by window, then by open time
// (legacy names, which have none, first), then by legacy suffix number, then
// by text.
func Compare(a, b Name) int {
	if c := a.Window.Compare(b.Window); c != 0 {
		return c
	}
	if c := a.Opened.Compare(b.Opened); c != 0 {
		return c
	}
	if c := a.Seq() - b.Seq(); c != 0 {
		return c
	}
	return strings.Compare(a.String(), b.String())
}

// nameRE is the grammar. The stream is any [a-z0-9_]+ word (config), the DPI
// 0..65535; an underscore in a stream is unambiguous because a window must
// follow the DPI.
var nameRE = regexp.MustCompile(`^([a-z0-9_]+)_(\d{1,5})_(\d{8}T\d{6}Z)` +
	`(?:_(\d{8}T\d{6}\.\d{6}Z)_([a-z2-7]{` + strconv.Itoa(InstanceLen) + `})|(_r?\d{1,9}|[-.][0-9A-Za-z]+))?` +
	regexp.QuoteMeta(Ext) + `$`)

// Grammar describes the accepted names, for error messages.
const Grammar = "<stream>_<dpi>_<YYYYMMDDTHHMMSSZ>_<YYYYMMDDTHHMMSS.ffffffZ>_<instance>.ipfix"

// Parse parses the base name of a closed dump (no directory, no PartSuffix).
func Parse(base string) (Name, error) {
	m := nameRE.FindStringSubmatch(base)
	if m == nil {
		return Name{}, fmt.Errorf("dump %q: name is not %s", base, Grammar)
	}
	dpi, err := strconv.Atoi(m[2])
	if err != nil || dpi > 65535 {
		return Name{}, fmt.Errorf("dump %q: dpi %q out of range", base, m[2])
	}
	n := Name{Stream: m[1], DPI: dpi, Instance: m[5], Suffix: m[6]}
	if n.Window, err = time.Parse(WindowLayout, m[3]); err != nil {
		return Name{}, fmt.Errorf("dump %q: window: %w", base, err)
	}
	if m[4] != "" {
		if n.Opened, err = time.Parse(OpenedLayout, m[4]); err != nil {
			return Name{}, fmt.Errorf("dump %q: open time: %w", base, err)
		}
	}
	return n, nil
}

// ParsePart parses the base name of a dump being written (ending in
// Ext+PartSuffix).
func ParsePart(base string) (Name, error) {
	s, ok := strings.CutSuffix(base, PartSuffix)
	if !ok {
		return Name{}, fmt.Errorf("dump %q: no %s suffix", base, PartSuffix)
	}
	return Parse(s)
}

// Prefix returns the part of every name of stream and dpi before the window:
// "<stream>_<dpi>_".
func Prefix(stream string, dpi int) string {
	return stream + "_" + strconv.Itoa(dpi) + "_"
}

// StreamDir is the directory of a stream's dumps under the dump root.
func StreamDir(root, stream string) string { return filepath.Join(root, stream) }

// Instance names the dumps of one process. Safe for concurrent use.
type Instance struct {
	id   string
	mu   sync.Mutex
	last time.Time
}

// NewInstance returns an instance with a random id.
func NewInstance() *Instance {
	var b [5]byte // 40 bits, 8 base32 letters; the first InstanceLen kept
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	id := strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:InstanceLen]
	return &Instance{id: id}
}

// NewInstanceID returns an instance with the given id (tests); it panics
// unless id is InstanceLen base32 letters.
func NewInstanceID(id string) *Instance {
	if !regexp.MustCompile(`^[a-z2-7]{` + strconv.Itoa(InstanceLen) + `}$`).MatchString(id) {
		panic("BUG: bad instance id " + strconv.Quote(id))
	}
	return &Instance{id: id}
}

// ID returns the instance id.
func (in *Instance) ID() string { return in.id }

// Name returns a new name of a dump of stream and dpi in the window starting
// at window, opened at now. Open times of one instance strictly increase
// (a microsecond later than the last one when the clock did not move on), so
// the instance never makes the same name twice.
func (in *Instance) Name(stream string, dpi int, window, now time.Time) Name {
	opened := now.UTC().Truncate(time.Microsecond)
	in.mu.Lock()
	if !opened.After(in.last) {
		opened = in.last.Add(time.Microsecond)
	}
	in.last = opened
	in.mu.Unlock()
	return Name{Stream: stream, DPI: dpi, Window: window.UTC(), Opened: opened, Instance: in.id}
}
