package loader_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// On the real ClickHouse: the manual's example dictionaries load as printed
// there and the reports can join them; a bad line is refused with file:line
// while the table and the in-memory version stay; an edited file replaces
// both within seconds, with no restart, and readers never miss the table.
func TestDictionaryTables(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := loader.NewClient(ch.URL, "", "")
	require.NoError(t, err)
	require.NoError(t, c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS ipfix"))
	caps, err := loader.DetectCapabilities(ctx, c)
	require.NoError(t, err)
	tables := loader.NewDictTables("ipfix", caps, c)

	dir := t.TempDir()
	require.NoError(t, dict.WriteSamples(dir))
	for _, s := range dict.Specs {
		b, err := dict.Sample(s.Name)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, s.Name, "operator.txt"), b, 0o644))
	}
	published := make(chan string, 64)
	w, err := dict.New(dict.Config{Dir: dir, PollEvery: 100 * time.Millisecond, Publish: func(ctx context.Context, d *dict.Dict) error {
		err := tables.Publish(ctx, d)
		if err == nil {
			published <- d.Spec.Name
		}
		return err
	}}, nil)
	require.NoError(t, err)
	require.NoError(t, w.Load(ctx), "the samples load")
	got := map[string]bool{}
	for len(published) > 0 {
		got[<-published] = true
	}
	assert.Len(t, got, len(dict.Specs), "every dictionary published at the first load")

	q := func(sql string) string { return strings.TrimSpace(ch.Query(t, sql)) }
	// The manual's own check query, and the rows as printed.
	assert.Equal(t, "192.168.1.0/24\tLOCAL\t4\n10.64.66.0/24\tLOCAL\t4\n172.16.0.0\tLOCAL\t4\n2a02:2168:aaa:bbb::2\tLOCAL\t6",
		q("SELECT subnet, name, ip_version FROM ipfix.subnets_local_dic"))
	assert.Contains(t, q("select * from ipfix.subnets_local_dic"), "10.64.66.0/24\tLOCAL")
	assert.Equal(t, "12345\tLOCAL\n65535\tUNKNOWN", q("SELECT asnum, name FROM ipfix.asnum_local_dic"))
	// Joins the reports make: an address against subnet ranges and subscribers.
	assert.Equal(t, "10.64.66.0/24", q("SELECT subnet FROM ipfix.subnets_local_dic WHERE IPv4StringToNum('10.64.66.100') BETWEEN subnet_first_ipv4 AND subnet_last_ipv4"))
	assert.Equal(t, "2a02:2168:aaa:bbb::2", q("SELECT subnet FROM ipfix.subnets_local_dic WHERE IPv6StringToNum('2a02:2168:aaa:bbb::2') BETWEEN subnet_first_ipv6 AND subnet_last_ipv6"))
	assert.Equal(t, "login\t5\tport2", q("SELECT login, switch_id, switch_port FROM ipfix.subscribers_dic WHERE ip_ipv4 = IPv4StringToNum('10.64.66.105')"))
	assert.Equal(t, "4\tport1", q("SELECT upstream_id, upstream_port FROM ipfix.switches_dic WHERE id = 5"))
	assert.Equal(t, "500", q("SELECT crc FROM ipfix.crc_dic WHERE switch_id = 5 AND switch_port = 'port_2'"))
	for _, s := range dict.Specs {
		d := w.Current().Dict(s.Name)
		assert.Equal(t, d.Len(), atoi(t, q("SELECT count() FROM ipfix."+s.Name)), s.Name)
		assert.Positive(t, d.Len(), s.Name)
	}

	// Readers run through every replacement below and must never miss the table.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErrs []string
	var reads int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := ch.Exec("SELECT count() FROM ipfix.subnets_local_dic"); err != nil {
				readErrs = append(readErrs, err.Error())
			}
			reads++
		}
	}()

	ctxRun, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(ctxRun) }()
	defer func() {
		stopRun()
		select {
		case <-runDone:
		case <-time.After(30 * time.Second):
			t.Error("watcher did not stop")
		}
	}()
	waitName := func(name string) time.Duration {
		t.Helper()
		start := time.Now()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case n := <-published:
				if n == name {
					return time.Since(start)
				}
			case <-timeout:
				t.Fatalf("%s not republished within 30s", name)
			}
		}
	}

	// A bad line: refused with file:line; the table and memory keep the old version.
	path := filepath.Join(dir, dict.SubnetsLocal, "operator.txt")
	require.NoError(t, os.WriteFile(path, []byte("10.99.0.0/16\tLOCAL\n10.98.0.0/16  LOCAL\n"), 0o644))
	// Whether the running watcher saw it first or not, Load reports it.
	loadErr := w.Load(ctx)
	require.Error(t, loadErr)
	assert.Contains(t, loadErr.Error(), path+":2: wrong number of columns: 1 tab-separated, want 2")
	assert.Equal(t, "4", q("SELECT count() FROM ipfix.subnets_local_dic"))
	assert.True(t, w.Current().SubnetsLocal().Contains(mustAddr("10.64.66.100")))
	assert.False(t, w.Current().SubnetsLocal().Contains(mustAddr("10.99.1.1")))

	// Fixed: memory and table change by themselves.
	for i := 0; i < 3; i++ {
		content := "10.99.0.0/16\tLOCAL\n10.98.0.0/16\tLOCAL\n" + strings.Repeat("10.97.0.0/16\tLOCAL\n", i)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		took := waitName(dict.SubnetsLocal)
		t.Logf("edit %d in ClickHouse after %v", i, took)
		assert.Equal(t, 2+i, atoi(t, q("SELECT count() FROM ipfix.subnets_local_dic")))
		assert.True(t, w.Current().SubnetsLocal().Contains(mustAddr("10.99.1.1")))
		assert.False(t, w.Current().SubnetsLocal().Contains(mustAddr("10.64.66.100")))
	}
	close(stop)
	wg.Wait()
	assert.Empty(t, readErrs, "a reader missed the table during a replacement")
	assert.Positive(t, reads)
	assert.Empty(t, q("SELECT name FROM system.tables WHERE database = 'ipfix' AND (name LIKE '%\\_new' OR name LIKE '%\\_old')"), "no leftovers")
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
