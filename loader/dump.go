package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Dump is a closed dump file waiting to be loaded.
type Dump struct {
	Path   string
	Name   string // base name, the ledger key
	Stream string
	DPI    int
	Window time.Time // start of the recording window, from the name
	Size   int64
}

// dumpName is <stream>_<dpi>_<YYYYMMDDTHHMMSSZ>[-suffix].ipfix. Writers use a
// different name (.part) until the file is closed, so a final name means the
// file is complete.
var dumpName = regexp.MustCompile(`^([a-z][a-z0-9_]*)_(\d{1,5})_(\d{8}T\d{6}Z)(?:[-.][0-9A-Za-z]+)?\.ipfix$`)

// ParseDumpName returns the stream, DPI and window of a dump's base name.
func ParseDumpName(name string) (stream string, dpi int, window time.Time, err error) {
	m := dumpName.FindStringSubmatch(name)
	if m == nil {
		return "", 0, time.Time{}, fmt.Errorf("dump %q: name is not <stream>_<dpi>_<YYYYMMDDTHHMMSSZ>.ipfix", name)
	}
	dpi, err = strconv.Atoi(m[2])
	if err != nil || dpi > 65535 {
		return "", 0, time.Time{}, fmt.Errorf("dump %q: dpi %q out of range", name, m[2])
	}
	window, err = time.Parse("20060102T150405Z", m[3])
	if err != nil {
		return "", 0, time.Time{}, fmt.Errorf("dump %q: window: %w", name, err)
	}
	return m[1], dpi, window, nil
}

// Subdirectories of a stream directory that hold finished dumps.
const (
	loadedDir = "loaded"
	badDir    = "bad"
)

// scanDumps lists the closed dumps under dir/<stream>/, oldest window first.
// Names that end in .ipfix but do not parse are returned in bad.
func scanDumps(dir string) (dumps []Dump, bad []string, err error) {
	streams, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range streams {
		if !s.IsDir() || strings.HasPrefix(s.Name(), ".") {
			continue
		}
		sdir := filepath.Join(dir, s.Name())
		entries, err := os.ReadDir(sdir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, nil, err
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasSuffix(name, ".ipfix") {
				continue
			}
			p := filepath.Join(sdir, name)
			stream, dpi, window, perr := ParseDumpName(name)
			if perr != nil {
				bad = append(bad, p)
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			dumps = append(dumps, Dump{Path: p, Name: name, Stream: stream, DPI: dpi, Window: window, Size: info.Size()})
		}
	}
	sort.Slice(dumps, func(i, j int) bool {
		a, b := dumps[i], dumps[j]
		if !a.Window.Equal(b.Window) {
			return a.Window.Before(b.Window)
		}
		return a.Path < b.Path
	})
	return dumps, bad, nil
}

// writeFileAtomic writes data to path through a temporary name.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// quarantine moves a dump to bad/ next to it, with a sidecar <name>.why
// saying why (written first, so a crash leaves at worst a sidecar without a
// dump).
func quarantine(path, why string) error {
	dir := filepath.Join(filepath.Dir(path), badDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(path))
	if err := writeFileAtomic(dst+".why", []byte(why)); err != nil {
		return err
	}
	if err := os.Rename(path, dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// retire moves a loaded dump to loaded/ next to it, or deletes it.
func retire(path string, remove bool) error {
	if remove {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	dir := filepath.Join(filepath.Dir(path), loadedDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(dir, filepath.Base(path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
