package loader_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// clickhouseClient runs clickhouse-client against ch with the manual's
// arguments and returns its output.
func clickhouseClient(t *testing.T, ch *testenv.ClickHouse, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("clickhouse-client")
	require.NoError(t, err, "clickhouse-client (scripts/install-test-deps.sh)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(ch.TCPPort)}, args...)...).CombinedOutput()
	require.NoError(t, err, "clickhouse-client %q: %s", args, out)
	return strings.TrimSpace(string(out))
}

// The legacy manual's troubleshooting queries and its CSV example run with
// clickhouse-client, as the manual writes them, against a database the
// loader filled (database "qoestor", as a legacy .env sets it); the CSV
// example needs the one change the README shows (IPv4StringToNum on 18.16).
func TestManualQueries(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	ff := writeDump(t, dir, "fullflow", 0, testWindow, 2000, 1, 0)
	cs := writeDump(t, dir, "clickstream", 0, testWindow, 1500, 2, 0.2)
	runOnce(t, newLoader(t, ch, dir, "qoestor", func(c *config.Loader) { c.Retention = 0 }))
	loaded := func(p string) string { return filepath.Join(filepath.Dir(p), "loaded", filepath.Base(p)) }
	ffRecs, err := decodeFile(t, loaded(ff))
	require.NoError(t, err)
	csRecs, err := decodeFile(t, loaded(cs))
	require.NoError(t, err)

	// Installation, step 2 and troubleshooting, step 2.
	assert.Contains(t, strings.Fields(clickhouseClient(t, ch, "--query=show databases")), "qoestor")

	// Troubleshooting, step 3: counts and time ranges, in the server's time zone.
	tz, err := time.LoadLocation(clickhouseClient(t, ch, "--query=select timezone()"))
	require.NoError(t, err)
	rng := func(recs []decoded, elem string, unit int64) string {
		lo, hi := int64(1<<62), int64(0)
		for _, r := range recs {
			for _, v := range r.vals {
				if v.Element != nil && v.Element.Name == elem {
					s := int64(v.Uint()) / unit
					lo, hi = min(lo, s), max(hi, s)
					break
				}
			}
		}
		f := func(s int64) string { return time.Unix(s, 0).In(tz).Format("2006-01-02 15:04:05") }
		return fmt.Sprintf("%d\t%s\t%s", len(recs), f(lo), f(hi))
	}
	assert.Equal(t, rng(ffRecs, "flowStartMilliseconds", 1000),
		clickhouseClient(t, ch, "--query=select count(), min(flow_start_time), max(flow_start_time) from qoestor.fullflow"))
	assert.Equal(t, rng(csRecs, "timeStamp", 1),
		clickhouseClient(t, ch, "--query=select count(), min(time), max(time) from qoestor.clickstream"))

	// Configuring the dictionaries: "check dictionaries for errors" runs
	// (the loader's dictionaries are tables, see README; none are server
	// dictionaries, so none can be in error).
	assert.Empty(t, clickhouseClient(t, ch, "--database=qoestor", "--query=select * from system.dictionaries"))

	// The CSV example, with a subscriber and host that are in the data.
	var addr, host string
	for _, r := range ffRecs {
		for _, v := range r.vals {
			switch {
			case v.Element == nil:
			case v.Element.Name == "sourceIPv4Address" && addr == "":
				addr = v.Addr().String()
			case v.Element.Name == "hostname" && host == "" && len(v.Raw) > 0:
				host = string(v.Raw)
			}
		}
		if addr != "" && host != "" {
			break
		}
	}
	want := 0
	for _, r := range ffRecs {
		var src, dst, h string
		for _, v := range r.vals {
			if v.Element == nil {
				continue
			}
			switch v.Element.Name {
			case "sourceIPv4Address":
				src = v.Addr().String()
			case "destinationIPv4Address":
				dst = v.Addr().String()
			case "hostname":
				h = string(v.Raw)
			}
		}
		if (src == addr || dst == addr) && h == host {
			want++
		}
	}
	require.NotZero(t, want)
	day := testWindow.Format("2006-01-02")
	csv := clickhouseClient(t, ch, "--database=qoestor", "--query=select * from fullflow\nprewhere flow_start_date = '"+day+
		"' where (source_ipv4 = IPv4StringToNum('"+addr+"')\nor destination_ipv4 = IPv4StringToNum('"+addr+"')) and host = '"+host+
		"' ORDER BY\nflow_start_time limit 10 format CSV")
	lines := strings.Split(csv, "\n")
	assert.Len(t, lines, min(10, want))
	assert.Contains(t, lines[0], `"`+host+`"`, "CSV rows of the host")

	// As written, the string literal meets a UInt32 column on 18.16: the
	// server refuses it, hence the README's IPv4StringToNum.
	bin, err := exec.LookPath("clickhouse-client")
	require.NoError(t, err)
	out, err := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(ch.TCPPort), "--database=qoestor",
		"--query=select * from fullflow prewhere flow_start_date = '"+day+"' where (source_ipv4 = '"+addr+"' or destination_ipv4 = '"+addr+
			"') and host = '"+host+"' ORDER BY flow_start_time limit 10 format CSV").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "Illegal types of arguments (UInt32, String) of function equals")

	// The README's NAT log example runs too.
	clickhouseClient(t, ch, "--database=qoestor", "--query=select time, IPv4NumToString(post_nat_source_ipv4_address) as nat_ip,\n"+
		"  sum(events) from natflow_agg where date = today() group by time, nat_ip order by time format CSV")
}
