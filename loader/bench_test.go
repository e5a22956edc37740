package loader_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// benchRows is the number of records per stream in BenchmarkLoadVsClient
// (IPFIX_BENCH_ROWS overrides it).
func benchRows() int {
	if s := os.Getenv("IPFIX_BENCH_ROWS"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
			return n
		}
	}
	return 400_000
}

var benchRun int

// BenchmarkLoadVsClient compares, on one private server in one run, the rows
// per second of the loader (IPFIX dumps decoded, inserted with the default
// batch size) with clickhouse-client inserting the same rows itself
// (INSERT ... FORMAT RowBinary from a file over the native protocol) into an
// identical schema (same tables and views). Run it with -benchtime=1x:
//
//	go test ./loader -run '^$' -bench LoadVsClient -benchtime=1x
func BenchmarkLoadVsClient(b *testing.B) {
	client, err := exec.LookPath("clickhouse-client")
	if err != nil {
		b.Fatal("clickhouse-client not found: run make test, which installs it")
	}
	ch := testenv.StartClickHouse(b)
	for _, stream := range []dpisim.Stream{dpisim.Fullflow, dpisim.Clickstream} {
		b.Run(string(stream), func(b *testing.B) {
			rows := benchRows()
			src := b.TempDir()
			const files = 4
			for i := range files {
				writeDump(b, src, string(stream), i, testWindow.Add(time.Duration(i)*time.Minute), rows/files, int64(i), 0.2)
			}
			var loaderRate, clientRate float64
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				copyDir(b, src, dir)
				benchRun++
				db := fmt.Sprintf("bench_%s_%d", stream, benchRun)
				l := newLoader(b, ch, dir, db, func(c *config.Loader) {
					c.BatchRows = config.Default().Loader.BatchRows
					c.Parallel = 2
				})
				require.NoError(b, l.Migrate(context.Background()))
				start := time.Now()
				runOnce(b, l)
				el := time.Since(start)
				n := countRows(b, ch, db, string(stream))
				require.Equal(b, rows/files*files, n)
				loaderRate = float64(n) / el.Seconds()

				// The same rows for clickhouse-client, in RowBinary.
				cols := tableColumns(b, ch, db, string(stream))
				names := make([]string, len(cols))
				for j, c := range cols {
					names[j] = "`" + c.name + "`"
				}
				file := filepath.Join(b.TempDir(), "rows.bin")
				exportRowBinary(b, ch, fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(names, ", "), db, stream), file)
				cdb := db + "_client"
				l2 := newLoader(b, ch, dir, cdb, nil)
				require.NoError(b, l2.Migrate(context.Background()))
				in, err := os.Open(file)
				require.NoError(b, err)
				cmd := exec.Command(client, "--host", "127.0.0.1", "--port", fmt.Sprint(ch.TCPPort),
					"--query", fmt.Sprintf("INSERT INTO %s.%s (%s) FORMAT RowBinary", cdb, stream, strings.Join(names, ", ")))
				cmd.Stdin = in
				start = time.Now()
				out, err := cmd.CombinedOutput()
				el = time.Since(start)
				in.Close()
				require.NoError(b, err, "%s", out)
				require.Equal(b, n, countRows(b, ch, cdb, string(stream)))
				clientRate = float64(n) / el.Seconds()
			}
			b.ReportMetric(loaderRate, "loader_rows/s")
			b.ReportMetric(clientRate, "client_rows/s")
			b.ReportMetric(loaderRate/clientRate, "ratio")
		})
	}
}

func exportRowBinary(tb testing.TB, ch *testenv.ClickHouse, query, path string) {
	tb.Helper()
	resp, err := http.Post(ch.URL+"/?query="+url.QueryEscape(query+" FORMAT RowBinary"), "text/plain", nil)
	require.NoError(tb, err)
	defer resp.Body.Close()
	require.Equal(tb, http.StatusOK, resp.StatusCode)
	f, err := os.Create(path)
	require.NoError(tb, err)
	_, err = io.Copy(f, resp.Body)
	require.NoError(tb, err)
	require.NoError(tb, f.Close())
}
