package loader_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
)

// Every record of every template family lands in its table with the values
// the decoder reads, field by field (IPv4 and IPv6 templates mixed).
func TestLoadEveryFamily(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	const db = "families"
	paths := map[string]string{}
	for i, s := range dpisim.Streams() {
		paths[string(s)] = writeDump(t, dir, string(s), i%3, testWindow, 700, int64(100+i), 0.3)
	}
	l := newLoader(t, ch, dir, db, func(c *config.Loader) { c.BatchRows = 300 })
	runOnce(t, l)

	for _, s := range dpisim.Streams() {
		t.Run(string(s), func(t *testing.T) {
			path := paths[string(s)]
			_, name := filepath.Split(path)
			assert.True(t, fileExists(filepath.Join(filepath.Dir(path), "loaded", name)), "dump moved to loaded/")
			assert.False(t, fileExists(path))
			recs, err := decodeFile(t, filepath.Join(filepath.Dir(path), "loaded", name))
			require.NoError(t, err)
			require.Len(t, recs, 700)
			table := tableOf(recs[0].tmpl)
			require.Equal(t, string(s), table)
			cols := tableColumns(t, ch, db, table)
			dpi := 0
			for i, x := range dpisim.Streams() {
				if x == s {
					dpi = i % 3
				}
			}
			want := make([]string, 0, len(recs))
			v6 := 0
			for _, r := range recs {
				want = append(want, expectedRow(r, cols, dpi))
				if r.tmpl.ID%2 == 1 {
					v6++
				}
			}
			require.NotZero(t, v6, "IPv6 records generated")
			sort.Strings(want)
			got := selectRows(t, ch, db, table, cols, "")
			require.Equal(t, len(want), len(got), "rows in %s", table)
			for i := range want {
				if want[i] != got[i] {
					w, g := strings.Split(want[i], "\t"), strings.Split(got[i], "\t")
					for j := range cols[:len(w)] {
						if j < len(g) && w[j] != g[j] {
							t.Errorf("row %d column %s: got %q, want %q", i, cols[j].name, g[j], w[j])
						}
					}
					t.FailNow()
				}
			}
		})
	}

	// Aggregates follow the raw tables.
	ff := ch.Query(t, "SELECT sum(octet_delta_count), sum(packet_delta_count), count() FROM "+db+".fullflow FORMAT TabSeparated")
	agg := ch.Query(t, "SELECT sum(bytes), sum(packets), sum(flows) FROM "+db+".fullflow_agg FORMAT TabSeparated")
	assert.Equal(t, ff, agg, "fullflow_agg sums")
	cs := ch.Query(t, "SELECT count() FROM "+db+".clickstream FORMAT TabSeparated")
	csAgg := ch.Query(t, "SELECT sum(requests) FROM "+db+".clickstream_agg FORMAT TabSeparated")
	assert.Equal(t, cs, csAgg, "clickstream_agg requests")
}

// The legacy manual's example query (one subscriber address, one host, one
// day, ordered by flow_start_time) returns the right rows.
func TestLegacyExampleQuery(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	const db = "legacy"
	path := writeDump(t, dir, "fullflow", 0, testWindow, 3000, 7, 0)
	recs, err := decodeFile(t, path)
	require.NoError(t, err)
	l := newLoader(t, ch, dir, db, nil)
	runOnce(t, l)

	// Pick the busiest (subscriber, host) pair.
	type pair struct{ addr, host string }
	val := func(r decoded, name string) ipfix.Value {
		for _, v := range r.vals {
			if v.Element != nil && v.Element.Name == name {
				return v
			}
		}
		t.Fatalf("record without %s", name)
		return ipfix.Value{}
	}
	counts := map[pair]int{}
	for _, r := range recs {
		counts[pair{val(r, "sourceIPv4Address").Addr().String(), string(val(r, "hostname").Raw)}]++
	}
	var best pair
	for p, n := range counts {
		if n > counts[best] || n == counts[best] && p.addr+p.host < best.addr+best.host {
			best = p
		}
	}
	require.Greater(t, counts[best], 1)
	var want []string
	for _, r := range recs {
		src, dst := val(r, "sourceIPv4Address").Addr().String(), val(r, "destinationIPv4Address").Addr().String()
		if (src == best.addr || dst == best.addr) && string(val(r, "hostname").Raw) == best.host {
			want = append(want, strconv.FormatUint(val(r, "sessionId").Uint(), 10))
		}
	}
	day := testWindow.Format("2006-01-02")
	where := fmt.Sprintf("(source_ipv4 = IPv4StringToNum('%s') or destination_ipv4 = IPv4StringToNum('%s')) and host = '%s'", best.addr, best.addr, best.host)
	// The manual's query, as written there (select *, CSV, limit 10).
	csv := ch.Query(t, fmt.Sprintf("select * from %s.fullflow prewhere flow_start_date = '%s' where %s ORDER BY flow_start_time limit 10 format CSV", db, day, where))
	assert.Len(t, strings.Split(strings.TrimSpace(csv), "\n"), min(10, len(want)))
	// All the rows, ordered by flow_start_time.
	out := ch.Query(t, fmt.Sprintf("select session_id, toUInt32(flow_start_time) from %s.fullflow prewhere flow_start_date = '%s' where %s ORDER BY flow_start_time format TabSeparated", db, day, where))
	var got []string
	prev := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		got = append(got, f[0])
		ts, _ := strconv.Atoi(f[1])
		assert.GreaterOrEqual(t, ts, prev, "ordered by flow_start_time")
		prev = ts
	}
	sort.Strings(want)
	sort.Strings(got)
	assert.Equal(t, want, got)
}

// Damaged dumps go to bad/ with a sidecar naming the file and the offset;
// what was decodable before the damage is loaded.
func TestCorruptDumps(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	const db = "corrupt"
	w := testWindow

	good := writeDump(t, dir, "fullflow", 0, w, 2000, 1, 0)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	require.NoError(t, os.Remove(good))

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, "fullflow", name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	truncated := write("fullflow_1_20250314T100000Z.ipfix", data[:len(data)*2/3])
	// A message header in the middle with a wrong version: framing is lost there.
	flipped := append([]byte(nil), data...)
	off := 0
	for i := 0; i < 5; i++ { // skip 5 messages
		off += int(flipped[off+2])<<8 | int(flipped[off+3])
	}
	flipped[off] ^= 0xff
	corrupt := write("fullflow_2_20250314T100000Z.ipfix", flipped)
	garbage := write("fullflow_3_20250314T100000Z.ipfix", []byte(strings.Repeat("this is not ipfix\n", 100)))
	empty := write("fullflow_4_20250314T100000Z.ipfix", nil)
	misnamed := write("fullflow-dump.ipfix", data)
	part := write("fullflow_5_20250314T100000Z.ipfix.part", data)

	wantRows := 0
	for _, p := range []string{truncated, corrupt} {
		recs, err := decodeFile(t, p)
		require.Error(t, err)
		require.NotEmpty(t, recs)
		wantRows += len(recs)
	}

	l := newLoader(t, ch, dir, db, nil)
	runOnce(t, l)

	for _, p := range []string{truncated, corrupt, garbage, empty, misnamed} {
		_, name := filepath.Split(p)
		bad := filepath.Join(dir, "fullflow", "bad", name)
		assert.True(t, fileExists(bad), "%s in bad/", name)
		why, err := os.ReadFile(bad + ".why")
		if assert.NoError(t, err, "sidecar of %s", name) {
			assert.Contains(t, string(why), p, "sidecar names the file")
			assert.Contains(t, string(why), "offset", "sidecar names the offset")
		}
	}
	assert.True(t, fileExists(part), ".part files are never touched")
	assert.Equal(t, wantRows, countRows(t, ch, db, "fullflow"), "records before the damage are loaded")

	mf := metricsText(l)
	assert.Contains(t, mf, `ipfix_loader_files_total{result="bad"} 5`)

	var st strings.Builder
	require.NoError(t, l.Status(context.Background(), &st))
	assert.Contains(t, st.String(), "backlog in "+dir+": 0 dumps")
	assert.Contains(t, st.String(), "fullflow_1_20250314T100000Z.ipfix")
	assert.Contains(t, st.String(), "last loads")
}

func metricsText(l *loader.Loader) string {
	var b strings.Builder
	l.Metrics().WritePrometheus(&b)
	return b.String()
}
