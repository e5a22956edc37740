package loader_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// Raw fullflow and clickstream partitions (one per hour) whose hour ended
// more than the retention ago are dropped; the hour that straddles the limit
// and later ones stay; the aggregates keep every row, until their own
// retention drops whole months.
func TestRetentionDropsRawPartitionsKeepsAggregates(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	const db = "retention"
	l := newLoader(t, ch, t.TempDir(), db, func(c *config.Loader) { c.Retention = 24 * time.Hour })
	runOnce(t, l) // migrate
	now := time.Now().UTC()
	h := now.Truncate(time.Hour)
	// Hours whose partition ends at or before now-24h go; the others stay.
	gone := []time.Time{h.Add(-100 * 24 * time.Hour), h.Add(-48 * time.Hour), h.Add(-26 * time.Hour), h.Add(-25 * time.Hour)}
	kept := []time.Time{h.Add(-24 * time.Hour), h.Add(-time.Hour), h}
	var ff, cs []string
	for i, at := range append(append([]time.Time(nil), gone...), kept...) {
		at = at.Add(time.Duration(i) * time.Minute) // inside its hour
		day := "toDate('" + at.Format("2006-01-02") + "')"
		ff = append(ff, fmt.Sprintf("(%s, toDateTime(%d), %d, 1, 'sub%d')", day, at.Unix(), 100*(i+1), i))
		cs = append(cs, fmt.Sprintf("(%s, toDateTime(%d), 'sub%d', 'example.org')", day, at.Unix(), i))
	}
	ch.Query(t, "INSERT INTO "+db+".fullflow (flow_start_date, flow_start_time, octet_delta_count, packet_delta_count, login) VALUES "+strings.Join(ff, ", "))
	ch.Query(t, "INSERT INTO "+db+".clickstream (date, time_stamp, login, hostname) VALUES "+strings.Join(cs, ", "))
	n := len(gone) + len(kept)
	total := 100 * n * (n + 1) / 2
	partitions := func(table string) string {
		return strings.TrimSpace(ch.Query(t, "SELECT groupArray(partition_id) FROM (SELECT DISTINCT partition_id FROM system.parts WHERE active AND database = '"+
			db+"' AND table = '"+table+"' ORDER BY partition_id)"))
	}
	var wantKept []string
	for _, at := range kept {
		wantKept = append(wantKept, "'"+at.Format("2006010215")+"'")
	}
	require.Equal(t, len(gone)+len(kept), strings.Count(partitions("fullflow"), ",")+1, "one partition per hour before retention")

	runOnce(t, l)
	for _, tbl := range []string{"fullflow", "clickstream"} {
		assert.Equal(t, "["+strings.Join(wantKept, ",")+"]", partitions(tbl), "%s partitions after retention", tbl)
	}
	assert.Equal(t, fmt.Sprint(len(kept)), strings.TrimSpace(ch.Query(t, "SELECT count() FROM "+db+".fullflow")))
	assert.Equal(t, fmt.Sprint(len(kept)), strings.TrimSpace(ch.Query(t, "SELECT count() FROM "+db+".clickstream")))
	// The aggregates still hold every row's sums.
	assert.Equal(t, fmt.Sprintf("%d\t%d", total, n), strings.TrimSpace(ch.Query(t, "SELECT sum(bytes), sum(flows) FROM "+db+".fullflow_agg")))
	assert.Equal(t, fmt.Sprint(n), strings.TrimSpace(ch.Query(t, "SELECT sum(requests) FROM "+db+".clickstream_agg")))
	assert.Equal(t, fmt.Sprintf(`ipfix_loader_dropped_partitions_total{table="clickstream"} %d
ipfix_loader_dropped_partitions_total{table="clickstream_agg"} 0
ipfix_loader_dropped_partitions_total{table="fullflow"} %d
ipfix_loader_dropped_partitions_total{table="fullflow_agg"} 0`, len(gone), len(gone)),
		metricLines(l, `ipfix_loader_dropped_partitions_total{table="fullflow`, `ipfix_loader_dropped_partitions_total{table="clickstream`))

	// Aggregate retention drops whole months: the one 100 days ago goes,
	// the current month stays.
	l2 := newLoader(t, ch, t.TempDir(), db, func(c *config.Loader) {
		c.Retention = 24 * time.Hour
		c.AggregateRetention = 60 * 24 * time.Hour
	})
	runOnce(t, l2)
	old := gone[0].Format("200601")
	for _, tbl := range []string{"fullflow_agg", "clickstream_agg"} {
		assert.NotContains(t, partitions(tbl), "'"+old+"'", tbl)
		assert.Contains(t, partitions(tbl), "'"+now.Format("200601")+"'", tbl)
	}
	assert.Equal(t, fmt.Sprintf("%d", total-100), strings.TrimSpace(ch.Query(t, "SELECT sum(bytes) FROM "+db+".fullflow_agg")))
	assert.Contains(t, metricLines(l2, `ipfix_loader_dropped_partitions_total{table="fullflow_agg"}`), `ipfix_loader_dropped_partitions_total{table="fullflow_agg"} 1`)
}

// fullflow_agg and clickstream_agg follow the configured fields and period:
// their rows equal a GROUP BY computed here over the rows inserted.
func TestConfiguredAggregates(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	const db = "aggcfg"
	l := newLoader(t, ch, t.TempDir(), db, func(c *config.Loader) {
		c.FullflowAgg = config.Aggregate{Fields: []string{"login", "protocol_identifier"}, Period: 15 * time.Minute}
		c.ClickstreamAgg = config.Aggregate{Fields: []string{"hostname"}, Period: 10 * time.Minute}
	})
	runOnce(t, l)
	base := time.Now().UTC().Truncate(24 * time.Hour)
	type key struct {
		at    int64
		a     string
		proto int
	}
	ffWant, csWant := map[key][3]int{}, map[key]int{}
	var ff, cs []string
	for i := range 200 {
		at := base.Add(time.Duration(i*97) * time.Second)
		login, proto, host := fmt.Sprintf("sub%d", i%3), []int{6, 17}[i%2], fmt.Sprintf("h%d.example", i%4)
		day := "toDate('" + at.Format("2006-01-02") + "')"
		ff = append(ff, fmt.Sprintf("(%s, toDateTime(%d), %d, %d, %d, '%s')", day, at.Unix(), i+1, i%5+1, proto, login))
		cs = append(cs, fmt.Sprintf("(%s, toDateTime(%d), '%s')", day, at.Unix(), host))
		k := key{at.Unix() / 900 * 900, login, proto}
		v := ffWant[k]
		ffWant[k] = [3]int{v[0] + i + 1, v[1] + i%5 + 1, v[2] + 1}
		csWant[key{at: at.Unix() / 600 * 600, a: host}]++
	}
	ch.Query(t, "INSERT INTO "+db+".fullflow (flow_start_date, flow_start_time, octet_delta_count, packet_delta_count, protocol_identifier, login) VALUES "+strings.Join(ff, ", "))
	ch.Query(t, "INSERT INTO "+db+".clickstream (date, time_stamp, hostname) VALUES "+strings.Join(cs, ", "))
	var want []string
	for k, v := range ffWant {
		want = append(want, fmt.Sprintf("%d\t%s\t%d\t%d\t%d\t%d", k.at, k.a, k.proto, v[0], v[1], v[2]))
	}
	sort.Strings(want)
	got := sortedLines(ch.Query(t, "SELECT toUInt32(flow_start_time) AS t, login, protocol_identifier, sum(bytes), sum(packets), sum(flows) FROM "+db+
		".fullflow_agg GROUP BY t, login, protocol_identifier"))
	assert.Equal(t, strings.Join(want, "\n"), got, "fullflow_agg")
	want = want[:0]
	for k, v := range csWant {
		want = append(want, fmt.Sprintf("%d\t%s\t%d", k.at, k.a, v))
	}
	sort.Strings(want)
	got = sortedLines(ch.Query(t, "SELECT toUInt32(time) AS t, hostname, sum(requests) FROM "+db+".clickstream_agg GROUP BY t, hostname"))
	assert.Equal(t, strings.Join(want, "\n"), got, "clickstream_agg")
	cols := ch.Query(t, "SELECT groupArray(name) FROM system.columns WHERE database = '"+db+"' AND table = 'fullflow_agg'")
	assert.Equal(t, "['flow_start_date','flow_start_time','login','protocol_identifier','bytes','packets','flows']", strings.TrimSpace(cols))
}

func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A ledger made before hourly partitions gets an hour column reading 255
// (legacyHour) for its rows, so the dumps those rows describe go on being
// numbered per day.
func TestLedgerWithoutHourMigrates(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	const db = "oldledger"
	ch.Query(t, "CREATE DATABASE "+db)
	ch.Query(t, "CREATE TABLE "+db+"._ledger (file String, state Enum8('intent' = 1, 'done' = 2, 'aborted' = 3, 'file' = 4), "+
		"table String, date Date, shard UInt16, start UInt64, rows UInt64, shard_rows UInt64, batch UInt64, checksum UInt32, detail String, at DateTime) "+
		"ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY (file, at)")
	ch.Query(t, "INSERT INTO "+db+"._ledger (file, state, table, date, at) VALUES ('x', 'done', 'fullflow', today(), now())")
	runOnce(t, newLoader(t, ch, t.TempDir(), db, nil))
	assert.Equal(t, "255", strings.TrimSpace(ch.Query(t, "SELECT hour FROM "+db+"._ledger WHERE file = 'x'")))
}

// A dump an older loader began (ledger rows per day, hour 255 after the
// migration) is finished per day: the rest of it loads once, neither twice
// nor lost, and its new ledger rows stay per day.
func TestDayLedgerResumesPerDay(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	batch := func(c *config.Loader) { c.BatchRows = 300 }
	dir := t.TempDir()
	path := writeDump(t, dir, "fullflow", 0, testWindow.Add(30*time.Minute), 1000, 1, 0)
	name := filepath.Base(path)
	runOnce(t, newLoader(t, ch, dir, "dayref", batch))
	require.Equal(t, 1000, countRows(t, ch, "dayref", "fullflow"))
	// One hour of records: per day and per hour they are numbered alike.
	require.Equal(t, "1", strings.TrimSpace(ch.Query(t, "SELECT uniqExact(hour) FROM dayref._ledger WHERE state = 'done'")))

	runOnce(t, newLoader(t, ch, t.TempDir(), "dayold", batch)) // the schema
	first := strings.TrimSpace(ch.Query(t, "SELECT batch FROM dayref._ledger WHERE state = 'done' AND start = 0 LIMIT 1"))
	require.NotEmpty(t, first)
	ch.Query(t, "INSERT INTO dayold.fullflow SELECT * FROM dayref.fullflow WHERE _batch = "+first)
	// As an older loader wrote them: no hour column (it reads 255).
	ch.Query(t, "INSERT INTO dayold._ledger (file, state, table, date, shard, start, rows, shard_rows, batch, checksum, detail, at) "+
		"SELECT file, state, table, date, shard, start, rows, shard_rows, batch, checksum, detail, at FROM dayref._ledger "+
		"WHERE batch = "+first+" AND state IN ('intent', 'done')")
	require.Equal(t, 300, countRows(t, ch, "dayold", "fullflow"))

	require.NoError(t, os.Rename(filepath.Join(dir, "fullflow", "loaded", name), path))
	runOnce(t, newLoader(t, ch, dir, "dayold", batch))
	assert.Equal(t, 1000, countRows(t, ch, "dayold", "fullflow"), "the rest of the dump, once")
	assert.Equal(t, checksum(t, ch, "dayref", "fullflow"), checksum(t, ch, "dayold", "fullflow"))
	assert.Equal(t, "4\t0", strings.TrimSpace(ch.Query(t, "SELECT count(), countIf(hour != 255) FROM dayold._ledger WHERE state = 'done'")),
		"its batches stay per day")
}
