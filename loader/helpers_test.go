package loader_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// loaderBin is cmd/ipfix-loader built once by TestMain.
var loaderBin string

func TestMain(m *testing.M) {
	// -race needs cgo; without it RunWithBinary builds a plain binary.
	os.Exit(testenv.RunWithBinary(m, &loaderBin, "ipfix-loader", "../cmd/ipfix-loader", "-race"))
}

// testWindow is the recording window of generated dumps.
var testWindow = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// writeDump writes an IPFIX file of n records of the given streams (round
// robin) as <dir>/<stream>/<stream>_<dpi>_<window>.ipfix (a name of the
// older grammar, still loaded) and returns its path.
func writeDump(t testing.TB, dir, stream string, dpi int, window time.Time, n int, seed int64, ipv6 float64, streams ...dpisim.Stream) string {
	t.Helper()
	if len(streams) == 0 {
		streams = []dpisim.Stream{dpisim.Stream(stream)}
	}
	sdir := filepath.Join(dir, stream)
	require.NoError(t, os.MkdirAll(sdir, 0o755))
	path := filepath.Join(sdir, fmt.Sprintf("%s_%d_%s.ipfix", stream, dpi, window.Format("20060102T150405Z")))
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	enc := ipfix.NewEncoder(uint32(dpi+1), 1400)
	enc.SetExportTime(uint32(window.Unix()))
	var werr error
	enc.SetOutput(func(msg []byte) {
		if _, err := f.Write(msg); err != nil && werr == nil {
			werr = err
		}
	})
	gens := make([]*dpisim.Generator, len(streams))
	for i, s := range streams {
		// Few seeds: the generator builds its pools once per seed. The
		// seed argument moves the clock instead, so dumps still differ.
		g, err := dpisim.NewWithConfig(dpisim.Config{Stream: s, Seed: 1 + int64(i), IPv6Share: ipv6,
			Subscribers: 1000, Hosts: 1000, Now: window.Add(time.Minute)})
		require.NoError(t, err)
		for _, tm := range g.Templates() {
			enc.AddTemplate(tm)
		}
		gens[i] = g
	}
	buf := make([]byte, 0, dpisim.MaxRecordLength)
	for i := range n {
		g := gens[i%len(gens)]
		if i%100 == 0 {
			g.SetNow(window.Add(time.Duration(seed)*time.Second + time.Duration(i)*time.Millisecond*50))
		}
		id, rec := g.Next(buf[:0])
		require.NoError(t, enc.AppendRecord(id, rec))
	}
	enc.Flush()
	require.NoError(t, werr)
	return path
}

// newLoader returns a loader of dir into a fresh database of ch.
func newLoader(t testing.TB, ch *testenv.ClickHouse, dir, db string, tweak func(*config.Loader)) *loader.Loader {
	t.Helper()
	cfg := config.Default().Loader
	cfg.Dir, cfg.ClickHouse, cfg.Database = dir, ch.URL, db
	cfg.BatchRows = 1000
	cfg.PollEvery = 100 * time.Millisecond
	cfg.Retention = 0
	if tweak != nil {
		tweak(&cfg)
	}
	l, err := loader.New(cfg, loader.Options{
		Log:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryMax:            500 * time.Millisecond,
		Settle:              200 * time.Millisecond,
		DictionaryPollEvery: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// setPolicies sets the enrichment modes of c that p and lp say.
func setPolicies(c *config.Loader, p dict.Policy, lp dict.LoginPolicy) {
	c.TrafficDirDefMode, c.SubscriberFilterMode, c.SubscriberExcludeMode = int(p.Direction), int(p.Filter), int(p.Exclude)
	c.ReplaceLoginWithVChannel, c.UseDicWhenReplacingLogin = int(lp.Replace), lp.UseDict
}

func runOnce(t testing.TB, l *loader.Loader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	require.NoError(t, l.RunOnce(ctx))
}

// decoded is one decoded record: its template and a copy of its values.
type decoded struct {
	tmpl       *ipfix.Template
	vals       []ipfix.Value
	exportTime uint32
}

// decodeFile decodes a dump the way the loader should, up to the first error.
func decodeFile(t testing.TB, path string) (recs []decoded, firstErr error) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	for {
		msg, err := fr.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		et := uint32(msg[4])<<24 | uint32(msg[5])<<16 | uint32(msg[6])<<8 | uint32(msg[7])
		derr := dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			vals := make([]ipfix.Value, len(r.Values))
			for i, v := range r.Values {
				v.Raw = append([]byte(nil), v.Raw...)
				vals[i] = v
			}
			recs = append(recs, decoded{r.Template, vals, et})
			return nil
		})
		if derr != nil {
			return recs, derr
		}
	}
}

// tableOf names the table a record belongs to, by the same signatures as
// the loader (kept independent on purpose: the test states the rules).
func tableOf(tm *ipfix.Template) string {
	has := map[string]bool{}
	for _, f := range tm.Fields {
		if e := ipfix.LookupElement(f.EnterpriseNumber, f.ID); e != nil {
			has[e.Name] = true
		}
	}
	switch {
	case has["rawData"]:
		return "raw"
	case has["domain"]:
		return "dnsflow"
	case has["msgCode"]:
		return "sip"
	case has["serverName"]:
		return "ftp"
	case has["imLogin"]:
		return "im"
	case has["mailSender"]:
		return "mail"
	case has["sslVersion"]:
		return "ssl_reply"
	case has["contentLength"]:
		return "http_reply"
	case has["path"]:
		return "clickstream"
	case has["natEvent"]:
		return "natflow"
	case has["mobileIMSI"]:
		return "gtpflow"
	case has["octetDeltaCount"]:
		return "fullflow"
	}
	return ""
}

type colInfo struct{ name, typ string }

// tableColumns lists the stored columns of a table (no ALIAS), in order.
func tableColumns(t testing.TB, ch *testenv.ClickHouse, db, table string) []colInfo {
	t.Helper()
	out := ch.Query(t, fmt.Sprintf("SELECT name, type FROM system.columns WHERE database = '%s' AND table = '%s' AND default_kind != 'ALIAS' FORMAT TabSeparated", db, table))
	var cols []colInfo
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		cols = append(cols, colInfo{f[0], f[1]})
	}
	return cols
}

// selectExpr renders a column as text independent of escaping.
func selectExpr(c colInfo) string {
	q := "`" + c.name + "`"
	switch {
	case c.typ == "String" || strings.HasPrefix(c.typ, "FixedString"):
		return "hex(" + q + ")"
	case c.typ == "Date":
		return "toUInt16(" + q + ")"
	case c.typ == "DateTime":
		return "toUInt32(" + q + ")"
	}
	return "toString(" + q + ")"
}

// expectedRow renders a decoded record as selectExpr renders its row.
func expectedRow(rec decoded, cols []colInfo, dpi int) string {
	byCol := map[string]ipfix.Value{}
	for _, v := range rec.vals {
		if v.Element == nil {
			continue
		}
		name := loader.SnakeCase(v.Element.Name)
		if v.Element.Type == ipfix.IPv4Address && len(v.Raw) == 16 {
			name += "_v6"
		}
		if _, dup := byCol[name]; !dup {
			byCol[name] = v
		}
	}
	sec := int64(rec.exportTime)
	if v, ok := byCol["flow_start_milliseconds"]; ok {
		sec = int64(v.Uint() / 1000)
	} else if v, ok := byCol["observation_time_milliseconds"]; ok {
		sec = int64(v.Uint() / 1000)
	} else if v, ok := byCol["time_stamp"]; ok {
		sec = int64(v.Uint())
	}
	var parts []string
	for _, c := range cols {
		switch c.name {
		case "_batch":
			continue
		case "dpi":
			parts = append(parts, strconv.Itoa(dpi))
			continue
		case "date", "flow_start_date":
			parts = append(parts, strconv.FormatInt(sec/86400, 10))
			continue
		case "flow_start_time", "time":
			parts = append(parts, strconv.FormatInt(sec, 10))
			continue
		}
		v, ok := byCol[c.name]
		switch {
		case !ok && c.typ == "String":
			parts = append(parts, "")
		case !ok && strings.HasPrefix(c.typ, "FixedString"):
			parts = append(parts, strings.Repeat("0", 32))
		case !ok:
			parts = append(parts, "0")
		case c.typ == "String" || strings.HasPrefix(c.typ, "FixedString"):
			parts = append(parts, strings.ToUpper(hex.EncodeToString(v.Raw)))
		default:
			parts = append(parts, strconv.FormatUint(v.Uint(), 10))
		}
	}
	return strings.Join(parts, "\t")
}

// selectRows returns the rows of a table as selectExpr renders them, sorted.
func selectRows(t testing.TB, ch *testenv.ClickHouse, db, table string, cols []colInfo, where string) []string {
	t.Helper()
	var exprs []string
	for _, c := range cols {
		if c.name != "_batch" {
			exprs = append(exprs, selectExpr(c))
		}
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(exprs, ", "), db, table)
	if where != "" {
		q += " WHERE " + where
	}
	out := strings.TrimSuffix(ch.Query(t, q+" FORMAT TabSeparated"), "\n")
	if out == "" {
		return nil
	}
	rows := strings.Split(out, "\n")
	sort.Strings(rows)
	return rows
}

// countRows returns count() of a table.
func countRows(t testing.TB, ch *testenv.ClickHouse, db, table string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(ch.Query(t, fmt.Sprintf("SELECT count() FROM %s.%s", db, table))))
	require.NoError(t, err)
	return n
}

// checksum is count and a hash over every stored column but _batch (which
// differs between a batch and its retry).
func checksum(t testing.TB, ch *testenv.ClickHouse, db, table string) string {
	t.Helper()
	var names []string
	for _, c := range tableColumns(t, ch, db, table) {
		if c.name != "_batch" {
			names = append(names, "`"+c.name+"`")
		}
	}
	return strings.TrimSpace(ch.Query(t, fmt.Sprintf("SELECT count(), sum(cityHash64(%s)) FROM %s.%s", strings.Join(names, ", "), db, table)))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
