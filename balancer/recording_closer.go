// The recorder's closer goroutine: it finishes the dumps the writer hands
// over (fsync, rename, directory fsync), recovers leftover .part files and
// applies retention.

package balancer

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

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
		if err != nil || n.Stream != rc.stream || n.DPI != rc.dpi {
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
