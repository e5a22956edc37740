package loader_test

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
)

// renameDump gives a written dump another base name in its directory.
func renameDump(t testing.TB, path, base string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(path), base)
	require.NoError(t, os.Rename(path, p))
	return p
}

// Every file of a window loads: the second, third... dump of a window
// (record-count rotation, a restart or reload inside the window, a rename
// clash) as older recorders named them, and as the recorder names them now
// (#10 item 2).
func TestLoadEveryFileOfAWindow(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	const db = "window_files"
	names := []string{ // writeDump writes the plain name: it comes last
		"fullflow_0_20250314T100000Z_1.ipfix",
		"fullflow_0_20250314T100000Z_2.ipfix",
		"fullflow_0_20250314T100000Z_r1.ipfix",
		"fullflow_0_20250314T100000Z_20250314T100512.000001Z_abc234.ipfix",
		"fullflow_0_20250314T100000Z_20250314T100512.000002Z_abc234.ipfix",
		"fullflow_0_20250314T100000Z.ipfix",
	}
	for i, name := range names {
		renameDump(t, writeDump(t, dir, "fullflow", 0, testWindow, 300, int64(i), 0), name)
	}
	l := newLoader(t, ch, dir, db, nil)
	runOnce(t, l)
	for _, name := range names {
		assert.True(t, fileExists(filepath.Join(dir, "fullflow", "loaded", name)), "%s in loaded/", name)
		assert.False(t, fileExists(filepath.Join(dir, "fullflow", "bad", name)), "%s not in bad/", name)
	}
	assert.Equal(t, 300*len(names), countRows(t, ch, db, "fullflow"))
}

// unknownSets is two messages of observation domain odid: a data set of a
// template nobody defined, then the withdrawal of another.
func unknownSets(odid uint32) []byte {
	header := func(n int) []byte {
		h := binary.BigEndian.AppendUint16(nil, 10)
		h = binary.BigEndian.AppendUint16(h, uint16(16+n))
		h = append(h, 0, 0, 0, 0, 0, 0, 0, 0)
		return binary.BigEndian.AppendUint32(h, odid)
	}
	data := []byte{0x03, 0xe7, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8} // set 999, 12 bytes
	withdraw := []byte{0, 2, 0, 8, 0x03, 0xe6, 0, 0}          // template set: withdraw 998
	msgs := append(header(len(data)), data...)
	msgs = append(msgs, header(len(withdraw))...)
	return append(msgs, withdraw...)
}

// A dump goes on past a harmless decode error: a data set of a template not
// yet defined (what every UDP recording has until the exporter re-sends its
// templates) or the withdrawal of an unknown template is dropped and counted,
// the rest loads and the dump goes to loaded/, not bad/ (#10 item 3).
func TestLoadSkipsHarmlessSets(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	const db = "harmless"
	path := writeDump(t, dir, "fullflow", 0, testWindow, 2000, 1, 0)
	f, err := os.Open(path)
	require.NoError(t, err)
	fr := ipfix.NewFileReader(f)
	var msgs [][]byte
	for {
		msg, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		msgs = append(msgs, append([]byte(nil), msg...))
	}
	require.NoError(t, f.Close())
	require.Greater(t, len(msgs), 4)
	// At the start (before any template) and in the middle.
	var out []byte
	out = append(out, unknownSets(1)...)
	for i, m := range msgs {
		if i == len(msgs)/2 {
			out = append(out, unknownSets(1)...)
		}
		out = append(out, m...)
	}
	require.NoError(t, os.WriteFile(path, out, 0o644))

	l := newLoader(t, ch, dir, db, nil)
	runOnce(t, l)
	name := filepath.Base(path)
	assert.True(t, fileExists(filepath.Join(dir, "fullflow", "loaded", name)), "dump in loaded/")
	assert.False(t, fileExists(filepath.Join(dir, "fullflow", "bad", name)), "dump not in bad/")
	assert.Equal(t, 2000, countRows(t, ch, db, "fullflow"))
	mf := metricLines(l, "ipfix_loader_skipped_sets_total", "ipfix_loader_files_total")
	assert.Contains(t, mf, `ipfix_loader_skipped_sets_total{kind="unknown_template"} 2`)
	assert.Contains(t, mf, `ipfix_loader_skipped_sets_total{kind="unknown_withdrawal"} 2`)
	assert.Contains(t, mf, `ipfix_loader_files_total{result="loaded"} 1`)
}

// A dump whose name was used before is loaded all the same: an older
// recorder gave the same name again after the loader deleted the first file
// (after_load = "delete"), and two sites with the same stream and DPI load
// into one ClickHouse (#10 item 4).
func TestReusedNameLoads(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	const db = "reused"
	siteA, siteB := t.TempDir(), t.TempDir()
	del := func(c *config.Loader) { c.AfterLoad = "delete" }

	a1 := writeDump(t, siteA, "fullflow", 0, testWindow, 500, 1, 0)
	runOnce(t, newLoader(t, ch, siteA, db, del))
	require.False(t, fileExists(a1), "deleted after load")
	require.Equal(t, 500, countRows(t, ch, db, "fullflow"))

	// The same name again, other records.
	a2 := writeDump(t, siteA, "fullflow", 0, testWindow, 700, 2, 0)
	require.Equal(t, a1, a2)
	runOnce(t, newLoader(t, ch, siteA, db, del))
	assert.Equal(t, 1200, countRows(t, ch, db, "fullflow"), "second dump of the same name loaded")

	// Another site, same stream, DPI and window.
	b := writeDump(t, siteB, "fullflow", 0, testWindow, 900, 3, 0)
	require.Equal(t, filepath.Base(a1), filepath.Base(b))
	runOnce(t, newLoader(t, ch, siteB, db, del))
	assert.Equal(t, 2100, countRows(t, ch, db, "fullflow"), "the other site's dump loaded")

	// Loading a dump again (a copy restored by hand) adds nothing.
	c := writeDump(t, siteB, "fullflow", 0, testWindow, 900, 3, 0)
	runOnce(t, newLoader(t, ch, siteB, db, del))
	assert.False(t, fileExists(c))
	assert.Equal(t, 2100, countRows(t, ch, db, "fullflow"), "the same dump twice loads once")
}

// metricLines is the text of the loader's series whose names start with one
// of prefixes.
func metricLines(l *loader.Loader, prefixes ...string) string {
	var out []string
	for _, line := range strings.Split(metricsText(l), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// A legacy dump whose load an older loader left unfinished (it keyed the
// ledger by the bare name) is finished from where it stopped after an
// upgrade: neither loaded twice nor lost.
func TestLegacyLedgerResumes(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	batch := func(c *config.Loader) { c.BatchRows = 300 }
	// db "before" is a finished load, to copy the first batch from.
	dir := t.TempDir()
	path := writeDump(t, dir, "fullflow", 0, testWindow, 1000, 1, 0)
	name := filepath.Base(path)
	runOnce(t, newLoader(t, ch, dir, "before", batch))
	require.Equal(t, 1000, countRows(t, ch, "before", "fullflow"))

	// db "after" holds what an older loader did before it stopped: the
	// first batch inserted, its ledger rows under the bare name.
	empty := t.TempDir()
	runOnce(t, newLoader(t, ch, empty, "after", batch)) // creates the schema
	first := strings.TrimSpace(ch.Query(t, "SELECT batch FROM before._ledger WHERE state = 'done' AND start = 0 LIMIT 1"))
	require.NotEmpty(t, first)
	ch.Query(t, "INSERT INTO after.fullflow SELECT * FROM before.fullflow WHERE _batch = "+first)
	ch.Query(t, "INSERT INTO after._ledger (file, state, table, date, hour, shard, start, rows, shard_rows, batch, checksum, detail, at) "+
		"SELECT '"+name+"', state, table, date, hour, shard, start, rows, shard_rows, batch, checksum, detail, at FROM before._ledger "+
		"WHERE batch = "+first+" AND state IN ('intent', 'done')")
	require.Equal(t, 300, countRows(t, ch, "after", "fullflow"))

	require.NoError(t, os.Rename(filepath.Join(dir, "fullflow", "loaded", name), path))
	runOnce(t, newLoader(t, ch, dir, "after", batch))
	assert.Equal(t, 1000, countRows(t, ch, "after", "fullflow"), "the rest of the dump, once")
	assert.Equal(t, checksum(t, ch, "before", "fullflow"), checksum(t, ch, "after", "fullflow"))
	assert.Equal(t, "1", strings.TrimSpace(ch.Query(t, "SELECT count() FROM after._ledger WHERE state = 'file' AND file = '"+name+"'")),
		"finished under the key it started with")
}
