package dict_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// metricValue returns the value of one metric line of w's set.
func metricValue(t testing.TB, w *dict.Watcher, name string) string {
	t.Helper()
	var b bytes.Buffer
	w.Metrics().WritePrometheus(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return strings.TrimPrefix(l, name+" ")
		}
	}
	t.Fatalf("metric %s not found in:\n%s", name, b.String())
	return ""
}

// A running watcher picks up an edited file by itself within seconds; a bad
// line is refused with file:line, counted once, and the previous version
// stays in force until the file is fixed.
func TestWatcherReloads(t *testing.T) {
	dir := t.TempDir()
	path := writeDict(t, dir, dict.SubnetsLocal, "local.txt", "10.64.66.0/24\tLOCAL\n")
	published := make(chan *dict.Dict, 64)
	w, err := dict.New(dict.Config{Dir: dir, PollEvery: 50 * time.Millisecond, Publish: func(_ context.Context, d *dict.Dict) error {
		published <- d
		return nil
	}}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("watcher did not stop")
		}
	})
	waitPublished := func(want string) *dict.Dict {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case d := <-published:
				if d.Spec.Name == want {
					return d
				}
			case <-timeout:
				t.Fatalf("%s not published within 10s", want)
			}
		}
	}
	// The first load publishes every dictionary, the empty ones too.
	first := map[string]bool{}
	for len(first) < len(dict.Specs) {
		select {
		case d := <-published:
			first[d.Spec.Name] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("first load published only %v", first)
		}
	}
	inside, later := netip.MustParseAddr("10.64.66.7"), netip.MustParseAddr("10.99.0.1")
	assert.True(t, w.Current().SubnetsLocal().Contains(inside))
	assert.False(t, w.Current().SubnetsLocal().Contains(later))

	// An edit: loaded with no restart.
	require.NoError(t, os.WriteFile(path, []byte("10.64.66.0/24\tLOCAL\n10.99.0.0/16\tLOCAL\n"), 0o644))
	start := time.Now()
	d := waitPublished(dict.SubnetsLocal)
	assert.Equal(t, 2, d.Len())
	assert.True(t, w.Current().SubnetsLocal().Contains(later))
	t.Logf("edit picked up in %v", time.Since(start))
	assert.Equal(t, "2", metricValue(t, w, `ipfix_loader_dictionary_loads_total{dictionary="subnets_local_dic"}`))
	assert.Equal(t, "2", metricValue(t, w, `ipfix_loader_dictionary_rows{dictionary="subnets_local_dic"}`))

	// A bad line: refused, counted once however many polls see it, the
	// previous version stays.
	require.NoError(t, os.WriteFile(path, []byte("10.64.66.0/24\tLOCAL\n10.77.0.0/16 LOCAL\n"), 0o644))
	errName := `ipfix_loader_dictionary_errors_total{dictionary="subnets_local_dic",kind="parse"}`
	testenv.WaitFor(t, 10*time.Second, "the parse error counted", func() bool { return metricValue(t, w, errName) == "1" })
	err = w.Load(context.Background()) // still refused: Load says so, with file:line
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":2: wrong number of columns")
	assert.Equal(t, "1", metricValue(t, w, errName))
	assert.True(t, w.Current().SubnetsLocal().Contains(later), "the previous version stays in force")

	// Fixed: the new version replaces it.
	require.NoError(t, os.WriteFile(path, []byte("10.77.0.0/16\tLOCAL\n"), 0o644))
	waitPublished(dict.SubnetsLocal)
	cur := w.Current().SubnetsLocal()
	assert.True(t, cur.Contains(netip.MustParseAddr("10.77.1.1")))
	assert.False(t, cur.Contains(inside))

	// Touched without a change: not reloaded.
	now := time.Now().Add(time.Second)
	require.NoError(t, os.Chtimes(path, now, now))
	require.NoError(t, w.Load(context.Background()))
	assert.Same(t, cur, w.Current().SubnetsLocal())

	// Removed: the dictionary becomes empty.
	require.NoError(t, os.Remove(path))
	d = waitPublished(dict.SubnetsLocal)
	assert.Zero(t, d.Len())
}

// A failed publish is counted and retried at the next load.
func TestWatcherPublishRetried(t *testing.T) {
	dir := t.TempDir()
	writeDict(t, dir, dict.VChannelName, "v.txt", "10\tA\n")
	fail := true
	var got []string
	w, err := dict.New(dict.Config{Dir: dir, Publish: func(_ context.Context, d *dict.Dict) error {
		if fail && d.Spec.Name == dict.VChannelName {
			return os.ErrDeadlineExceeded
		}
		got = append(got, d.Spec.Name)
		return nil
	}}, nil)
	require.NoError(t, err)
	err = w.Load(context.Background())
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.NotContains(t, got, dict.VChannelName)
	assert.Equal(t, "1", metricValue(t, w, `ipfix_loader_dictionary_errors_total{dictionary="vchannel_name_dic",kind="publish"}`))
	n, ok := w.Current().VChannelNames().VChannelName(10)
	assert.True(t, ok, "in force in memory even while ClickHouse lags")
	assert.Equal(t, "A", n)
	fail = false
	got = nil
	require.NoError(t, w.Load(context.Background()))
	assert.Equal(t, []string{dict.VChannelName}, got)
}

// Metric names follow the project's rules and are in the README table.
func TestMetricNames(t *testing.T) {
	w, err := dict.New(dict.Config{Dir: t.TempDir()}, nil)
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	names := w.Metrics().ListMetricNames()
	require.NotEmpty(t, names)
	for _, n := range names {
		base := n
		if i := strings.IndexByte(n, '{'); i >= 0 {
			base = n[:i]
		}
		assert.Regexp(t, `^ipfix_loader_[a-z_]+$`, base)
		assert.True(t, strings.Contains(string(readme), "`"+base+"`"), "README metrics table lacks %s", base)
	}
}
