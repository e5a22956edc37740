package loader_test

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
)

// natEvent is one NAT event as the test computes it from the records it
// sent: the eleven fields of NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK, in bit
// order, as the query below renders them, and its time.
type natEvent struct {
	sec    int64
	fields [11]string
}

// natEventsOf reads the natflow records of a loaded dump (and, with
// fromFullflow, the fullflow records with a post-NAT IPv4 source, as the
// legacy NAT_IMPORT_FROM_FULLFLOW derives them).
func natEventsOf(t *testing.T, path string, dpi int) []natEvent {
	t.Helper()
	recs, err := decodeFile(t, path)
	require.NoError(t, err)
	var out []natEvent
	for _, r := range recs {
		v := map[string]string{}
		raw := map[string][]byte{}
		var sec int64
		for _, x := range r.vals {
			if x.Element == nil {
				continue
			}
			name := loader.SnakeCase(x.Element.Name)
			if _, dup := v[name]; dup {
				continue
			}
			raw[name] = x.Raw
			switch name {
			case "login":
				v[name] = strings.ToUpper(hex.EncodeToString(x.Raw))
			case "source_ipv6_address", "destination_ipv6_address", "post_nat_source_ipv6_address", "hostname":
			default:
				v[name] = fmt.Sprint(x.Uint())
			}
			switch name {
			case "observation_time_milliseconds", "flow_start_milliseconds":
				sec = int64(x.Uint() / 1000)
			}
		}
		if tableOf(r.tmpl) == "fullflow" {
			if v["post_nat_source_ipv4_address"] == "" || v["post_nat_source_ipv4_address"] == "0" {
				continue
			}
			v["nat_event"] = "1"
		}
		var e natEvent
		e.sec = sec
		for i, f := range loader.NATAggFields {
			switch {
			case f == "dpi":
				e.fields[i] = fmt.Sprint(dpi)
			case v[f] == "" && f != "login":
				e.fields[i] = "0"
			default:
				e.fields[i] = v[f]
			}
		}
		out = append(out, e)
	}
	return out
}

// natGroupBy is GROUP BY over events: the interval's start, the fields the
// bitmask keeps (the others 0 or ”), count().
func natGroupBy(events []natEvent, mask uint16, interval time.Duration) string {
	n := int64(interval / time.Second)
	counts := map[string]int{}
	for _, e := range events {
		key := []string{fmt.Sprint(e.sec / n * n)}
		for i, f := range e.fields {
			switch {
			case mask&(1<<i) != 0:
				key = append(key, f)
			case loader.NATAggFields[i] == "login":
				key = append(key, "")
			default:
				key = append(key, "0")
			}
		}
		counts[strings.Join(key, "\t")]++
	}
	var out []string
	for k, c := range counts {
		out = append(out, fmt.Sprintf("%s\t%d", k, c))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

const natAggQuery = "SELECT toUInt32(time) AS t, protocol_identifier AS a, nat_event AS b, toUInt32(source_ipv4_address) AS c, " +
	"source_transport_port AS d, toUInt32(destination_ipv4_address) AS e, destination_transport_port AS f, " +
	"toUInt32(post_nat_source_ipv4_address) AS g, post_napt_source_transport_port AS h, session_id AS i, hex(login) AS j, dpi AS k, " +
	"sum(events) FROM %s.natflow_agg GROUP BY t, a, b, c, d, e, f, g, h, i, j, k"

// For several bitmasks and intervals, natflow_agg equals a GROUP BY over
// the events the test sent, computed here; with NAT_IMPORT_FROM_FULLFLOW
// the events derived from fullflow count too, and natflow holds them.
func TestNATAggregation(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	cases := []struct {
		name         string
		mask         uint16
		interval     time.Duration
		fromFullflow bool
	}{
		{"counts only, 1m", 0, time.Minute, false},
		{"protocol and event, 5m", 0x1 | 0x2, 5 * time.Minute, false},
		{"source and login, 10m", 0x4 | 0x200, 10 * time.Minute, false},
		{"post-NAT address and port and DPI, 15m", 0x40 | 0x80 | 0x400, 15 * time.Minute, false},
		{"every field, 30m", 0x7ff, 30 * time.Minute, false},
		{"every field, 60m, from fullflow", 0x7ff, time.Hour, true},
		{"login and post-NAT address, 1m, from fullflow", 0x200 | 0x40, time.Minute, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := fmt.Sprintf("nat%d", i)
			dir := t.TempDir()
			type dumpAt struct {
				path string
				dpi  int
			}
			dumps := []dumpAt{
				{writeDump(t, dir, "natflow", 0, testWindow, 3000, 1, 0.2), 0},
				{writeDump(t, dir, "natflow", 1, testWindow.Add(47*time.Minute), 2000, 2, 0.2), 1},
			}
			if tc.fromFullflow {
				dumps = append(dumps, dumpAt{writeDump(t, dir, "fullflow", 2, testWindow.Add(20*time.Minute), 2000, 3, 0.2), 2})
			}
			l := newLoader(t, ch, dir, db, func(c *config.Loader) {
				c.NAT = config.NAT{ImportFromFullflow: tc.fromFullflow, AggFields: tc.mask, AggInterval: tc.interval}
			})
			runOnce(t, l)
			var events []natEvent
			for _, d := range dumps {
				loaded := filepath.Join(filepath.Dir(d.path), "loaded", filepath.Base(d.path))
				events = append(events, natEventsOf(t, loaded, d.dpi)...)
			}
			require.GreaterOrEqual(t, len(events), 5000)
			got := sortedLines(ch.Query(t, fmt.Sprintf(natAggQuery, db)))
			want := natGroupBy(events, tc.mask, tc.interval)
			assert.Equal(t, strings.Count(want, "\n"), strings.Count(got, "\n"), "groups in natflow_agg")
			if !assert.Equal(t, want, got) {
				t.Log(ch.Query(t, "SELECT count(), uniqExact(_batch) FROM "+db+".natflow"), ch.Query(t, "SELECT name FROM system.tables WHERE database = '"+db+"'"))
			}
			assert.Equal(t, fmt.Sprint(len(events)), strings.TrimSpace(ch.Query(t, "SELECT count() FROM "+db+".natflow")), "natflow rows")
		})
	}
}

// Changing the bitmask or the interval replaces the view: rows loaded
// after follow the new setting, none is counted twice, and turning
// NAT_IMPORT_FROM_FULLFLOW off drops its view.
func TestNATAggregationSettingChanges(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	const db = "natchange"
	dir := t.TempDir()
	p1 := writeDump(t, dir, "natflow", 0, testWindow, 1000, 1, 0)
	runOnce(t, newLoader(t, ch, dir, db, func(c *config.Loader) {
		c.NAT = config.NAT{ImportFromFullflow: true, AggFields: 0x1, AggInterval: time.Minute}
	}))
	p2 := writeDump(t, dir, "natflow", 0, testWindow.Add(2*time.Hour), 1000, 2, 0)
	runOnce(t, newLoader(t, ch, dir, db, func(c *config.Loader) {
		c.NAT = config.NAT{AggFields: 0x2, AggInterval: 5 * time.Minute}
	}))
	views := ch.Query(t, "SELECT groupArray(name) FROM (SELECT name FROM system.tables WHERE database = '"+db+"' AND name LIKE 'nat%mv%' ORDER BY name)")
	assert.Equal(t, "['natflow_agg_mv_002_5m']", strings.TrimSpace(views))
	loaded := func(p string) string { return filepath.Join(filepath.Dir(p), "loaded", filepath.Base(p)) }
	want := natGroupBy(natEventsOf(t, loaded(p1), 0), 0x1, time.Minute) + "\n" + natGroupBy(natEventsOf(t, loaded(p2), 0), 0x2, 5*time.Minute)
	assert.Equal(t, sortedLines(want), sortedLines(ch.Query(t, fmt.Sprintf(natAggQuery, db))))
}
