package loader

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
)

// Dump is a closed dump file waiting to be loaded.
type Dump struct {
	Path   string
	Name   string // base name
	Stream string
	DPI    int
	Window time.Time // start of the recording window, from the name
	Size   int64

	name dump.Name
	key  string // the ledger key, set by load (see ledgerKey)
}

// scanDumps lists the closed dumps under dir/<stream>/, in the order they
// were written (dump.Compare). Names that end in .ipfix but do not parse are
// returned in bad.
func scanDumps(dir string) (dumps []Dump, bad []string, err error) {
	streams, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range streams {
		if !s.IsDir() || strings.HasPrefix(s.Name(), ".") {
			continue
		}
		sdir := dump.StreamDir(dir, s.Name())
		entries, err := os.ReadDir(sdir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, nil, err
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasSuffix(name, dump.Ext) {
				continue
			}
			p := filepath.Join(sdir, name)
			n, perr := dump.Parse(name)
			if perr != nil {
				bad = append(bad, p)
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			dumps = append(dumps, Dump{Path: p, Name: name, Stream: n.Stream, DPI: n.DPI, Window: n.Window, Size: info.Size(), name: n})
		}
	}
	sort.Slice(dumps, func(i, j int) bool {
		if c := dump.Compare(dumps[i].name, dumps[j].name); c != 0 {
			return c < 0
		}
		return dumps[i].Path < dumps[j].Path
	})
	return dumps, bad, nil
}

// contentBytes is how much of each end of a legacy dump its ledger key hashes.
const contentBytes = 64 << 10

// ledgerKey is what the ledger knows a dump by. A name of the current grammar
// never repeats (dump.Name): the name is the key. A legacy name may (an older
// recorder reused it after the loader deleted the file, after retention, after
// two restarts in one window; two sites record the same stream and DPI): its
// key adds the size and a CRC-32 of the first and last 64 KiB, which differ
// between two dumps of the same name, and are equal for a copy of a dump
// already loaded.
func ledgerKey(d Dump) (string, error) {
	if !d.name.Legacy() {
		return d.Name, nil
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := crc32.NewIEEE()
	if _, err := io.CopyN(h, f, contentBytes); err != nil && err != io.EOF {
		return "", err
	}
	if tail := st.Size() - contentBytes; tail > contentBytes {
		if _, err := f.Seek(tail, io.SeekStart); err != nil {
			return "", err
		}
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
	} else if tail > 0 {
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s#%d-%08x", d.Name, st.Size(), h.Sum32()), nil
}
