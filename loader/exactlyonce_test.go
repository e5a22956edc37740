package loader_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// killDumps writes the dumps of the crash tests into dir: fullflow of two
// DPIs, a clickstream dump that also carries http_reply and ssl_reply
// records, and dnsflow; one fullflow dump crosses midnight (two partitions).
func killDumps(t testing.TB, dir string) (records int) {
	midnight := time.Date(2025, 3, 14, 23, 59, 0, 0, time.UTC)
	writeDump(t, dir, "fullflow", 0, testWindow, 3000, 1, 0.2)
	writeDump(t, dir, "fullflow", 1, midnight, 3000, 2, 0.2)
	writeDump(t, dir, "clickstream", 0, testWindow.Add(10*time.Minute), 3000, 3, 0.3,
		dpisim.Clickstream, dpisim.HTTPReply, dpisim.SSLReply)
	writeDump(t, dir, "dnsflow", 0, testWindow.Add(20*time.Minute), 2000, 4, 0.3)
	return 11000
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	}))
}

var crashTables = []string{"fullflow", "clickstream", "http_reply", "ssl_reply", "dnsflow"}

// A loader killed with SIGKILL at 20 random instants and restarted each time
// loads every record exactly once: row counts and a checksum over all columns
// of every table equal those of a clean load of the same dumps.
func TestExactlyOnceUnderSIGKILL(t *testing.T) { exactlyOnceUnderSIGKILL(t, nil, nil) }

// exactlyOnceUnderSIGKILL runs the crash test with extra flags for the
// killed loader and the same configuration (tweak) for the reference.
func exactlyOnceUnderSIGKILL(t *testing.T, extraArgs []string, tweak func(*config.Loader)) {
	ch := testenv.StartClickHouse(t)
	dir, refDir := t.TempDir(), t.TempDir()
	total := killDumps(t, dir)
	copyDir(t, dir, refDir)

	t0 := time.Now()
	ref := newLoader(t, ch, refDir, "ref", tweak)
	runOnce(t, ref)
	t.Logf("reference load: %v", time.Since(t0))
	t0 = time.Now()

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	args := []string{"-dir", dir, "-clickhouse", ch.URL, "-database", "killed", "-once",
		"-batch-rows", "100", "-parallel", "2", "-settle", "200ms", "-retention", "0", "-log-level", "warn"}
	args = append(args, extraArgs...)
	kills := 0
	var logs bytes.Buffer
	for i := 0; i < 20; i++ {
		cmd := exec.Command(loaderBin, args...)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(150+rng.IntN(700)) * time.Millisecond
		select {
		case err := <-done:
			require.NoError(t, err, "loader exited early:\n%s", logs.String())
		case <-time.After(delay):
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			<-done
			kills++
		}
	}
	t.Logf("kill runs: %v", time.Since(t0))
	t0 = time.Now()
	// Finally let it finish.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, loaderBin, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	logs.Write(out)
	t.Logf("final run: %v", time.Since(t0))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("loader logs:\n%s", logs.String())
			t.Logf("ledger: %s", ch.Query(t, "SELECT state, count() FROM killed._ledger GROUP BY state FORMAT TabSeparated"))
		}
	})
	assert.GreaterOrEqual(t, kills, 15, "kills that hit a running loader")
	t.Logf("%d kills hit a running loader", kills)

	sum, refSum := 0, 0
	for _, table := range crashTables {
		want := checksum(t, ch, "ref", table)
		got := checksum(t, ch, "killed", table)
		assert.Equal(t, want, got, "count and checksum of %s", table)
		sum += countRows(t, ch, "killed", table)
		refSum += countRows(t, ch, "ref", table)
	}
	assert.Equal(t, refSum, sum, "records loaded")
	if tweak == nil {
		assert.Equal(t, total, sum, "records loaded")
	} else {
		assert.Less(t, sum, total, "enrichment dropped some records")
	}
	for _, q := range []string{
		"SELECT sum(bytes), sum(packets), sum(flows) FROM %s.fullflow_agg",
		"SELECT sum(requests) FROM %s.clickstream_agg",
	} {
		assert.Equal(t, ch.Query(t, fmt.Sprintf(q, "ref")), ch.Query(t, fmt.Sprintf(q, "killed")), q)
	}
	left, err := filepath.Glob(filepath.Join(dir, "*", "*.ipfix"))
	require.NoError(t, err)
	assert.Empty(t, left, "every dump moved to loaded/")
	loaded, _ := filepath.Glob(filepath.Join(dir, "*", "loaded", "*.ipfix"))
	assert.Len(t, loaded, 4)
	// Every intent was settled.
	open := ch.Query(t, "SELECT count() FROM killed._ledger WHERE state = 'intent' AND batch NOT IN (SELECT batch FROM killed._ledger WHERE state IN ('done', 'aborted'))")
	assert.Equal(t, "0\n", open, "intents without outcome")
}

// ClickHouse stopped for a while in the middle of a load, then started again:
// the loader retries, nothing is lost, nothing doubled.
func TestClickHouseOutage(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	total := 0
	for i := range 4 {
		writeDump(t, dir, "fullflow", i, testWindow.Add(time.Duration(i)*time.Minute), 1500, int64(i), 0.2)
		total += 1500
	}
	l := newLoader(t, ch, dir, "outage", func(c *config.Loader) {
		c.BatchRows = 250
		c.Parallel = 2
	})
	require.NoError(t, l.Migrate(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.RunOnce(ctx) }()

	// Stop the server once loading is under way.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := ch.Exec("SELECT count() FROM outage.fullflow")
		require.NoError(t, err)
		if strings.TrimSpace(out) != "0" {
			break
		}
		require.True(t, time.Now().Before(deadline), "loading did not start")
		time.Sleep(20 * time.Millisecond)
	}
	t0 := time.Now()
	ch.Stop()
	t.Logf("server stopped in %v", time.Since(t0))
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("loader returned while ClickHouse was down: %v", err)
	default:
	}
	ch.Start()
	t0 = time.Now()
	require.NoError(t, <-done)
	t.Logf("load finished %v after restart", time.Since(t0))

	assert.Equal(t, total, countRows(t, ch, "outage", "fullflow"))
	assert.Equal(t, fmt.Sprint(total)+"\n", ch.Query(t, "SELECT sum(flows) FROM outage.fullflow_agg"))
	m := metricsText(l)
	assert.NotContains(t, m, "ipfix_loader_retries_total 0\n", "retries counted")
	assert.Contains(t, m, `ipfix_loader_files_total{result="loaded"} 4`)
	assert.Contains(t, m, `ipfix_loader_inserted_records_total{table="fullflow"} `+fmt.Sprint(total))
}

// Over a 2-shard cluster, rows are spread by subscriber and counts are exact.
func TestTwoShardCluster(t *testing.T) {
	chs := testenv.StartClickHouseCluster(t, 2)
	dir := t.TempDir()
	writeDump(t, dir, "fullflow", 0, testWindow, 3000, 1, 0.2)
	writeDump(t, dir, "clickstream", 0, testWindow, 3000, 2, 0.2)
	l := newLoader(t, chs[0], dir, "sharded", func(c *config.Loader) {
		c.Cluster = testenv.ClusterName
		c.Shards = []string{chs[0].URL, chs[1].URL}
	})
	runOnce(t, l)

	for _, table := range []string{"fullflow", "clickstream"} {
		n0 := countRows(t, chs[0], "sharded", table+"_local")
		n1 := countRows(t, chs[1], "sharded", table+"_local")
		assert.Positive(t, n0, "%s rows on shard 1", table)
		assert.Positive(t, n1, "%s rows on shard 2", table)
		assert.Equal(t, 3000, n0+n1, "%s rows over both shards", table)
		for _, ch := range chs {
			assert.Equal(t, 3000, countRows(t, ch, "sharded", table), "%s through Distributed on %s", table, ch.URL)
		}
		// A subscriber's rows live on one shard.
		l0 := strings.Fields(chs[0].Query(t, "SELECT DISTINCT login FROM sharded."+table+"_local"))
		l1 := map[string]bool{}
		for _, s := range strings.Fields(chs[1].Query(t, "SELECT DISTINCT login FROM sharded."+table+"_local")) {
			l1[s] = true
		}
		for _, s := range l0 {
			assert.False(t, l1[s], "login %s on both shards", s)
		}
	}
	assert.Equal(t, "3000\n", chs[1].Query(t, "SELECT sum(requests) FROM sharded.clickstream_agg"))
}
