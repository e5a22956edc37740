package loader_test

import (
	"context"
	"fmt"
	"net/netip"
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
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// sides reads a decoded record's sides by element name, the way the README
// defines them (kept apart from the loader's code on purpose).
func sides(rec decoded) (f dict.Flow, login string, vchannel uint16, hasVChannel bool) {
	get := map[string]ipfix.Value{}
	for _, v := range rec.vals {
		if e := ipfix.LookupElement(v.Field.EnterpriseNumber, v.Field.ID); e != nil {
			get[e.Name+fmt.Sprint(len(v.Raw))] = v // ipSource comes with 4 or 16 bytes
			get[e.Name] = v
		}
	}
	addr := func(names ...string) netip.Addr {
		for _, n := range names {
			for _, l := range []int{4, 16} {
				v, ok := get[n+fmt.Sprint(l)]
				if !ok || len(v.Raw) != l {
					continue
				}
				a, _ := netip.AddrFromSlice(v.Raw)
				if a.Is4() && a.As4() == [4]byte{} {
					continue
				}
				return a.Unmap()
			}
		}
		return netip.Addr{}
	}
	u := func(n string) uint64 {
		if v, ok := get[n]; ok {
			return v.Uint()
		}
		return 0
	}
	if _, ok := get["octetDeltaCount"]; ok {
		f = dict.Flow{SrcAddr: addr("sourceIPv4Address", "sourceIPv6Address"), DstAddr: addr("destinationIPv4Address", "destinationIPv6Address"),
			SrcPort: uint16(u("sourceTransportPort")), DstPort: uint16(u("destinationTransportPort")),
			SrcAS: uint32(u("bgpSourceAsNumber")), DstAS: uint32(u("bgpDestinationAsNumber")), HasAS: true}
	} else {
		f = dict.Flow{SrcAddr: addr("ipSource"), DstAddr: addr("ipDestination"),
			SrcPort: uint16(u("portSource")), DstPort: uint16(u("portDestination"))}
	}
	if v, ok := get["login"]; ok {
		login = string(v.Raw)
	}
	v, hasVChannel := get["bridgeChannelNum"]
	if hasVChannel {
		vchannel = uint16(v.Uint())
	}
	return f, login, vchannel, hasVChannel
}

// Enrichment on the load path: the rows in ClickHouse are the dump's rows
// with direction, subscriber filter and exclude (CIDR) and the login from
// vchannel applied as the README defines them, dropped rows counted by
// reason, and a second run loads nothing twice.
func TestLoadWithEnrichment(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir, dicDir := t.TempDir(), t.TempDir()
	ff := writeDump(t, dir, "fullflow", 0, testWindow, 4000, 1, 0.3)
	cs := writeDump(t, dir, "clickstream", 0, testWindow, 2000, 2, 0.3)
	files := map[string]string{
		dict.SubnetsLocal:   "10.0.0.0/9\tHALF_OF_SUBSCRIBERS\n2001:db8::/33\tHALF_V6\n",
		dict.SubnetsExclude: "10.0.0.0/12\tEXCLUDED\n",
	}
	var vc strings.Builder
	for i := 0; i < 4096; i += 2 {
		fmt.Fprintf(&vc, "%d\tvc_%d\n", i, i)
	}
	files[dict.VChannelName] = vc.String()
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(dicDir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dicDir, name, "test.txt"), []byte(content), 0o644))
	}
	policy := dict.Policy{Direction: dict.ModeCIDR, Filter: dict.ModeCIDR, Exclude: dict.ModeCIDR}
	lp := dict.LoginPolicy{Replace: dict.LoginVChannel, UseDict: true}

	// The expected rows, from the dump and the same dictionaries.
	w, err := dict.New(dict.Config{Dir: dicDir}, nil)
	require.NoError(t, err)
	require.NoError(t, w.Load(context.Background()))
	set := w.Current()
	want := map[string][]string{}
	drops := map[string]map[dict.Verdict]int{"fullflow": {}, "clickstream": {}}
	swaps, renamed := 0, 0
	for _, path := range []string{ff, cs} {
		recs, err := decodeFile(t, path)
		require.NoError(t, err)
		for _, rec := range recs {
			table := tableOf(rec.tmpl)
			f, login, vch, hasV := sides(rec)
			sw, v := policy.Apply(set, &f)
			if v != dict.Keep {
				drops[table][v]++
				continue
			}
			if sw {
				swaps++
			}
			if hasV {
				if nl := lp.Login(set, login, vch); nl != login {
					renamed++
				}
				login = lp.Login(set, login, vch)
			}
			want[table] = append(want[table], fmt.Sprintf("%s|%s|%d|%d|%s", f.SrcAddr, f.DstAddr, f.SrcPort, f.DstPort, login))
		}
	}
	for _, table := range []string{"fullflow", "clickstream"} {
		require.Positive(t, len(want[table]), table)
		require.Positive(t, drops[table][dict.DropFilter], "the crafted dictionaries filter some %s rows", table)
		require.Positive(t, drops[table][dict.DropExclude], "and exclude some %s rows", table)
	}
	require.Positive(t, swaps, "and swap some rows")
	require.Positive(t, renamed, "and rename some logins")
	t.Logf("expected: fullflow %d rows, clickstream %d, drops %v, swaps %d, logins replaced %d",
		len(want["fullflow"]), len(want["clickstream"]), drops, swaps, renamed)

	l := newLoader(t, ch, dir, "enrich", func(c *config.Loader) {
		c.Dictionaries = dicDir
		setPolicies(c, policy, lp)
	})
	runOnce(t, l)
	addr := func(v4, v6 string) string {
		return fmt.Sprintf("if(%s != 0, IPv4NumToString(%s), IPv6NumToString(%s))", v4, v4, v6)
	}
	queries := map[string]string{
		"fullflow": "SELECT concat(" + addr("source_ipv4_address", "source_ipv6_address") + ", '|', " +
			addr("destination_ipv4_address", "destination_ipv6_address") + ", '|', toString(source_transport_port), '|', " +
			"toString(destination_transport_port), '|', login) FROM enrich.fullflow",
		"clickstream": "SELECT concat(" + addr("ip_source", "ip_source_v6") + ", '|', " + addr("ip_destination", "ip_destination_v6") +
			", '|', toString(port_source), '|', toString(port_destination), '|', login) FROM enrich.clickstream",
	}
	for table, q := range queries {
		got := strings.Split(strings.TrimSpace(ch.Query(t, q)), "\n")
		sort.Strings(got)
		sort.Strings(want[table])
		require.Equal(t, len(want[table]), len(got), table)
		assert.Equal(t, want[table], got, "%s rows (-got, +want)", table)
	}
	m := metricsText(l)
	for table, d := range drops {
		assert.Contains(t, m, fmt.Sprintf(`ipfix_loader_dropped_records_total{table=%q,reason="subscriber_filter"} %d`, table, d[dict.DropFilter]))
		assert.Contains(t, m, fmt.Sprintf(`ipfix_loader_dropped_records_total{table=%q,reason="subscriber_exclude"} %d`, table, d[dict.DropExclude]))
	}
	// The samples were written next to the operator's files, and not loaded.
	for _, sp := range dict.Specs {
		assert.FileExists(t, filepath.Join(dicDir, sp.Name, dict.SampleFile))
	}
	// The dictionaries are in ClickHouse too.
	assert.Equal(t, "2", strings.TrimSpace(ch.Query(t, "SELECT count() FROM enrich.subnets_local_dic")))

	// Both dumps moved to loaded/; a second run finds nothing to do.
	runOnce(t, l)
	assert.Equal(t, len(want["fullflow"]), countRows(t, ch, "enrich", "fullflow"))
}

// A policy whose dictionary is refused at start stops the loader with the
// file:line, instead of dropping every row.
func TestLoadRefusesBadDictionaryAtStart(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir, dicDir := t.TempDir(), t.TempDir()
	writeDump(t, dir, "fullflow", 0, testWindow, 100, 1, 0)
	bad := filepath.Join(dicDir, dict.SubnetsLocal, "local.txt")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o755))
	require.NoError(t, os.WriteFile(bad, []byte("10.0.0.0/8 LOCAL\n"), 0o644))
	l := newLoader(t, ch, dir, "enrich_bad", func(c *config.Loader) {
		c.Dictionaries, c.SubscriberFilterMode = dicDir, int(dict.ModeCIDR)
	})
	err := l.RunOnce(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+":1: wrong number of columns")
	assert.Zero(t, countRows(t, ch, "enrich_bad", "fullflow"))
	_, statErr := os.Stat(filepath.Join(dir, "fullflow", filepath.Base(dir)))
	assert.True(t, os.IsNotExist(statErr))
}

func TestConfigNeedsDictionaries(t *testing.T) {
	cfg := config.Default().Loader
	cfg.SubscriberFilterMode = int(dict.ModeCIDR)
	_, err := loader.New(cfg, loader.Options{})
	assert.ErrorContains(t, err, "loader.subscriber_filter_mode: 2: needs loader.dictionaries")
	cfg.SubscriberFilterMode = 7
	cfg.Dictionaries = t.TempDir()
	_, err = loader.New(cfg, loader.Options{})
	assert.ErrorContains(t, err, "loader.subscriber_filter_mode: 7: want 0..4")
}

// A running loader picks up an edited dictionary by itself: dumps loaded
// after the edit are enriched with the new version, with no restart.
func TestRunningLoaderFollowsDictionaryEdits(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir, dicDir := t.TempDir(), t.TempDir()
	path := filepath.Join(dicDir, dict.SubnetsLocal, "local.txt")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte("192.0.2.0/24\tNOBODY\n"), 0o644)) // matches no generated address
	l := newLoader(t, ch, dir, "follow", func(c *config.Loader) {
		c.Dictionaries = dicDir
		c.SubscriberFilterMode = int(dict.ModeCIDR)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("loader did not stop")
		}
	}()
	// Dumps appear closed, by rename, as the recorder makes them.
	stage := t.TempDir()
	place := func(p string) string {
		t.Helper()
		dst := filepath.Join(dir, "fullflow", filepath.Base(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.Rename(p, dst))
		return dst
	}
	waitLoaded := func(name string) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, name+" loaded", func() bool {
			return fileExists(filepath.Join(dir, "fullflow", "loaded", filepath.Base(name)))
		})
	}
	d1 := place(writeDump(t, stage, "fullflow", 0, testWindow, 500, 1, 0))
	waitLoaded(d1)
	assert.Zero(t, countRows(t, ch, "follow", "fullflow"), "the filter drops every row: no subscriber is local yet")

	start := time.Now()
	require.NoError(t, os.WriteFile(path, []byte("10.0.0.0/8\tSUBSCRIBERS\n"), 0o644))
	testenv.WaitFor(t, 30*time.Second, "the edit in ClickHouse", func() bool {
		return strings.TrimSpace(ch.Query(t, "SELECT count() FROM follow.subnets_local_dic WHERE subnet = '10.0.0.0/8'")) == "1"
	})
	t.Logf("edit in force after %v", time.Since(start))
	d2 := place(writeDump(t, stage, "fullflow", 0, testWindow.Add(10*time.Minute), 500, 2, 0))
	waitLoaded(d2)
	assert.Positive(t, countRows(t, ch, "follow", "fullflow"), "rows of subscribers in 10.0.0.0/8 kept after the edit")
}

// The crash test with enrichment on: the killed loader runs on the shipped
// config/default.toml with its dictionary keys set (direction, filter and
// exclude by CIDR, login from vchannel with the dictionary); every record
// is loaded or dropped exactly once, as in a clean load with the same
// dictionaries.
func TestExactlyOnceUnderSIGKILLWithDictionaries(t *testing.T) {
	dicDir := t.TempDir()
	var vc strings.Builder
	for i := 0; i < 4096; i += 3 {
		fmt.Fprintf(&vc, "%d\tvc_%d\n", i, i)
	}
	for name, content := range map[string]string{
		dict.SubnetsLocal:   "10.0.0.0/9\tL\n2001:db8::/33\tL\n",
		dict.SubnetsExclude: "10.0.0.0/12\tX\n",
		dict.VChannelName:   vc.String(),
	} {
		require.NoError(t, os.MkdirAll(filepath.Join(dicDir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dicDir, name, "test.txt"), []byte(content), 0o644))
	}
	shipped, err := os.ReadFile("../config/default.toml")
	require.NoError(t, err)
	cfg := string(shipped)
	for old, repl := range map[string]string{
		`dictionaries = ""`:                    fmt.Sprintf("dictionaries = %q", dicDir),
		"traffic_dir_def_mode = 0":             "traffic_dir_def_mode = 2",
		"subscriber_filter_mode = 0":           "subscriber_filter_mode = 2",
		"subscriber_exclude_mode = 0":          "subscriber_exclude_mode = 2",
		"replace_login_with_vchannel = 0":      "replace_login_with_vchannel = 2",
		"use_dic_when_replacing_login = false": "use_dic_when_replacing_login = true",
	} {
		require.Contains(t, cfg, old)
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	path := filepath.Join(t.TempDir(), "balancer.toml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	exactlyOnceUnderSIGKILL(t, []string{"-config", path, "-metrics", "127.0.0.1:0"}, func(c *config.Loader) {
		c.Dictionaries = dicDir
		c.TrafficDirDefMode, c.SubscriberFilterMode, c.SubscriberExcludeMode = int(dict.ModeCIDR), int(dict.ModeCIDR), int(dict.ModeCIDR)
		c.ReplaceLoginWithVChannel, c.UseDicWhenReplacingLogin = int(dict.LoginIfEmpty), true
	})
}

// Login from vchannel needs no dictionary: every login becomes the row's
// vchannel number.
func TestLoadLoginFromVChannelWithoutDictionaries(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	writeDump(t, dir, "fullflow", 0, testWindow, 500, 1, 0.3)
	writeDump(t, dir, "clickstream", 0, testWindow, 500, 2, 0.3)
	l := newLoader(t, ch, dir, "vlogin", func(c *config.Loader) {
		c.ReplaceLoginWithVChannel = int(dict.LoginVChannel)
	})
	runOnce(t, l)
	for _, table := range []string{"fullflow", "clickstream"} {
		assert.Equal(t, 500, countRows(t, ch, "vlogin", table))
		assert.Equal(t, "0", strings.TrimSpace(ch.Query(t, "SELECT count() FROM vlogin."+table+" WHERE login != toString(bridge_channel_num)")), table)
	}
}
