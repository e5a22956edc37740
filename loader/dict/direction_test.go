package dict_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// testSet loads dictionaries written as files, through a Watcher.
func testSet(t testing.TB, files map[string]string) *dict.Set {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeDict(t, dir, name, "test.txt", content)
	}
	w, err := dict.New(dict.Config{Dir: dir}, nil)
	require.NoError(t, err)
	require.NoError(t, w.Load(context.Background()))
	return w.Current()
}

// The dictionaries of the direction tests.
var directionDicts = map[string]string{
	dict.AsnumLocal:     "64500\tOUR_ISP\n",
	dict.SubnetsLocal:   "10.0.0.0/8\tLOCAL\n2001:db8::/32\tLOCAL\n198.51.100.7\tLOCAL\n",
	dict.AsnumExclude:   "64501\tPARTNER\n",
	dict.SubnetsExclude: "10.9.0.0/16\tSERVERS\n2001:db8:9::/48\tSERVERS\n",
}

const (
	asLocal    = 64500
	asExcluded = 64501
	asOther    = 15169
)

var (
	local4    = netip.MustParseAddr("10.1.1.1")     // in subnets_local_dic
	excl4     = netip.MustParseAddr("10.9.0.5")     // local, and in subnets_exclude_dic
	bare4     = netip.MustParseAddr("198.51.100.7") // local as a bare address (/32)
	nextBare4 = netip.MustParseAddr("198.51.100.8") // next to it: not local
	ext4      = netip.MustParseAddr("203.0.113.5")
	ext4b     = netip.MustParseAddr("8.8.8.8")
	unlisted4 = netip.MustParseAddr("192.0.2.1") // in no subnet
	local6    = netip.MustParseAddr("2001:db8::1")
	excl6     = netip.MustParseAddr("2001:db8:9::5")
	ext6      = netip.MustParseAddr("2a00:1450::1")
)

// ff is a fullflow row's sides (with AS numbers), cs a clickstream row's.
func ff(src netip.Addr, sport uint16, sas uint32, dst netip.Addr, dport uint16, das uint32) dict.Flow {
	return dict.Flow{SrcAddr: src, SrcPort: sport, SrcAS: sas, DstAddr: dst, DstPort: dport, DstAS: das, HasAS: true}
}

func cs(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) dict.Flow {
	return dict.Flow{SrcAddr: src, SrcPort: sport, DstAddr: dst, DstPort: dport}
}

// Direction x filter x exclude over crafted rows: the row that comes out.
func TestPolicyApply(t *testing.T) {
	set := testSet(t, directionDicts)
	type policy = dict.Policy
	cases := []struct {
		name    string
		policy  policy
		in      dict.Flow
		want    dict.Flow
		swapped bool
		verdict dict.Verdict
	}{
		{"all modes 0: an inbound row stays as sent", policy{},
			ff(ext4, 443, asOther, local4, 50000, asLocal), ff(ext4, 443, asOther, local4, 50000, asLocal), false, dict.Keep},

		// TRAFFIC_DIR_DEF_MODE=2 (CIDR)
		{"dir cidr: inbound IPv4 swapped (ports and AS numbers too)", policy{Direction: 2},
			ff(ext4, 443, asOther, local4, 50000, asLocal), ff(local4, 50000, asLocal, ext4, 443, asOther), true, dict.Keep},
		{"dir cidr: outbound IPv4 stays", policy{Direction: 2},
			ff(local4, 50000, asLocal, ext4, 443, asOther), ff(local4, 50000, asLocal, ext4, 443, asOther), false, dict.Keep},
		{"dir cidr: local to local stays", policy{Direction: 2},
			ff(local4, 1, 0, bare4, 2, 0), ff(local4, 1, 0, bare4, 2, 0), false, dict.Keep},
		{"dir cidr: transit (neither local) stays", policy{Direction: 2},
			ff(ext4, 1, 0, ext4b, 2, 0), ff(ext4, 1, 0, ext4b, 2, 0), false, dict.Keep},
		{"dir cidr: a bare address is a /32", policy{Direction: 2},
			ff(ext4, 1, 0, bare4, 2, 0), ff(bare4, 2, 0, ext4, 1, 0), true, dict.Keep},
		{"dir cidr: the address next to a bare one is not local", policy{Direction: 2},
			ff(ext4, 1, 0, nextBare4, 2, 0), ff(ext4, 1, 0, nextBare4, 2, 0), false, dict.Keep},
		{"dir cidr: inbound IPv6 swapped", policy{Direction: 2},
			ff(ext6, 443, asOther, local6, 50000, asLocal), ff(local6, 50000, asLocal, ext6, 443, asOther), true, dict.Keep},
		{"dir cidr: clickstream inbound swapped", policy{Direction: 2},
			cs(ext6, 443, local6, 50000), cs(local6, 50000, ext6, 443), true, dict.Keep},
		{"dir cidr: AS numbers alone do not count", policy{Direction: 2},
			ff(ext4, 1, asOther, unlisted4, 2, asLocal), ff(ext4, 1, asOther, unlisted4, 2, asLocal), false, dict.Keep},

		// TRAFFIC_DIR_DEF_MODE=1 (AS, fullflow only)
		{"dir as: swapped by the AS alone, address in no subnet", policy{Direction: 1},
			ff(ext4, 443, asOther, unlisted4, 50000, asLocal), ff(unlisted4, 50000, asLocal, ext4, 443, asOther), true, dict.Keep},
		{"dir as: a local subnet alone does not count", policy{Direction: 1},
			ff(ext4, 443, asOther, local4, 50000, asOther), ff(ext4, 443, asOther, local4, 50000, asOther), false, dict.Keep},
		{"dir as: clickstream has no AS numbers, stays", policy{Direction: 1},
			cs(ext4, 443, local4, 50000), cs(ext4, 443, local4, 50000), false, dict.Keep},

		// TRAFFIC_DIR_DEF_MODE=3 (AS and CIDR)
		{"dir both: local AS but address in no subnet stays", policy{Direction: 3},
			ff(ext4, 443, asOther, unlisted4, 50000, asLocal), ff(ext4, 443, asOther, unlisted4, 50000, asLocal), false, dict.Keep},
		{"dir both: local AS and subnet swapped", policy{Direction: 3},
			ff(ext4, 443, asOther, local4, 50000, asLocal), ff(local4, 50000, asLocal, ext4, 443, asOther), true, dict.Keep},
		{"dir both: clickstream judged by subnet", policy{Direction: 3},
			cs(ext4, 443, local4, 50000), cs(local4, 50000, ext4, 443), true, dict.Keep},

		// TRAFFIC_DIR_DEF_MODE=4 (AS or CIDR)
		{"dir either: the AS alone suffices", policy{Direction: 4},
			ff(ext4, 443, asOther, unlisted4, 50000, asLocal), ff(unlisted4, 50000, asLocal, ext4, 443, asOther), true, dict.Keep},
		{"dir either: the subnet alone suffices (IPv6)", policy{Direction: 4},
			ff(ext6, 443, asOther, local6, 50000, asOther), ff(local6, 50000, asOther, ext6, 443, asOther), true, dict.Keep},
		{"dir either: neither stays", policy{Direction: 4},
			ff(ext6, 443, asOther, ext6, 50000, asOther), ff(ext6, 443, asOther, ext6, 50000, asOther), false, dict.Keep},

		// SUBSCRIBER_FILTER_MODE
		{"dir+filter cidr: inbound kept with the subscriber as source", policy{Direction: 2, Filter: 2},
			ff(ext4, 443, 0, local4, 50000, 0), ff(local4, 50000, 0, ext4, 443, 0), true, dict.Keep},
		{"dir+filter cidr: transit dropped", policy{Direction: 2, Filter: 2},
			ff(ext4, 443, 0, ext4b, 50000, 0), ff(ext4, 443, 0, ext4b, 50000, 0), false, dict.DropFilter},
		{"filter cidr without direction: inbound dropped (its source is external)", policy{Filter: 2},
			ff(ext4, 443, 0, local4, 50000, 0), ff(ext4, 443, 0, local4, 50000, 0), false, dict.DropFilter},
		{"filter cidr: IPv6 subscriber kept", policy{Filter: 2},
			cs(local6, 50000, ext6, 443), cs(local6, 50000, ext6, 443), false, dict.Keep},
		{"filter as: local AS kept", policy{Filter: 1},
			ff(unlisted4, 50000, asLocal, ext4, 443, asOther), ff(unlisted4, 50000, asLocal, ext4, 443, asOther), false, dict.Keep},
		{"filter as: other AS dropped even in a local subnet", policy{Filter: 1},
			ff(local4, 50000, asOther, ext4, 443, asOther), ff(local4, 50000, asOther, ext4, 443, asOther), false, dict.DropFilter},
		{"filter as: clickstream cannot be judged, kept", policy{Filter: 1},
			cs(ext4, 1, ext4b, 2), cs(ext4, 1, ext4b, 2), false, dict.Keep},
		{"filter both: local AS, address in no subnet: dropped", policy{Filter: 3},
			ff(unlisted4, 1, asLocal, ext4, 2, asOther), ff(unlisted4, 1, asLocal, ext4, 2, asOther), false, dict.DropFilter},
		{"filter both: clickstream judged by subnet", policy{Filter: 3},
			cs(local4, 1, ext4, 2), cs(local4, 1, ext4, 2), false, dict.Keep},
		{"filter either: the AS alone suffices", policy{Filter: 4},
			ff(unlisted4, 1, asLocal, ext4, 2, asOther), ff(unlisted4, 1, asLocal, ext4, 2, asOther), false, dict.Keep},

		// SUBSCRIBER_EXCLUDE_MODE
		{"dir+filter+exclude cidr: excluded subscriber dropped after the swap", policy{Direction: 2, Filter: 2, Exclude: 2},
			ff(ext4, 443, 0, excl4, 50000, 0), ff(excl4, 50000, 0, ext4, 443, 0), true, dict.DropExclude},
		{"dir+filter+exclude cidr: other local subscriber kept", policy{Direction: 2, Filter: 2, Exclude: 2},
			ff(ext4, 443, 0, local4, 50000, 0), ff(local4, 50000, 0, ext4, 443, 0), true, dict.Keep},
		{"exclude cidr: only the subscriber side counts", policy{Exclude: 2},
			ff(local4, 1, 0, excl4, 2, 0), ff(local4, 1, 0, excl4, 2, 0), false, dict.Keep},
		{"exclude cidr: IPv6 excluded range", policy{Exclude: 2},
			cs(excl6, 1, ext6, 2), cs(excl6, 1, ext6, 2), false, dict.DropExclude},
		{"exclude cidr: IPv6 outside the excluded /48", policy{Exclude: 2},
			cs(local6, 1, ext6, 2), cs(local6, 1, ext6, 2), false, dict.Keep},
		{"exclude as: excluded AS dropped", policy{Exclude: 1},
			ff(unlisted4, 1, asExcluded, ext4, 2, asOther), ff(unlisted4, 1, asExcluded, ext4, 2, asOther), false, dict.DropExclude},
		{"exclude as: clickstream cannot be judged, kept", policy{Exclude: 1},
			cs(excl4, 1, ext4, 2), cs(excl4, 1, ext4, 2), false, dict.Keep},
		{"exclude both: excluded AS, address not excluded: kept", policy{Exclude: 3},
			ff(local4, 1, asExcluded, ext4, 2, asOther), ff(local4, 1, asExcluded, ext4, 2, asOther), false, dict.Keep},
		{"exclude both: excluded AS and subnet: dropped", policy{Exclude: 3},
			ff(excl4, 1, asExcluded, ext4, 2, asOther), ff(excl4, 1, asExcluded, ext4, 2, asOther), false, dict.DropExclude},
		{"exclude both: clickstream judged by subnet", policy{Exclude: 3},
			cs(excl4, 1, ext4, 2), cs(excl4, 1, ext4, 2), false, dict.DropExclude},
		{"exclude either: the subnet alone suffices (IPv6)", policy{Exclude: 4},
			ff(excl6, 1, asOther, ext6, 2, asOther), ff(excl6, 1, asOther, ext6, 2, asOther), false, dict.DropExclude},
		{"filter then exclude: a row failing both counts as filtered", policy{Filter: 2, Exclude: 1},
			ff(ext4, 1, asExcluded, ext4b, 2, asOther), ff(ext4, 1, asExcluded, ext4b, 2, asOther), false, dict.DropFilter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.policy.Validate())
			got := tc.in
			swapped, v := tc.policy.Apply(set, &got)
			assert.Equal(t, tc.want, got, "row")
			assert.Equal(t, tc.swapped, swapped, "swapped")
			assert.Equal(t, tc.verdict.String(), v.String(), "verdict")
		})
	}
}

// With empty dictionaries a filter drops everything and direction changes
// nothing: the modes need the dictionaries the manual says to fill.
func TestPolicyEmptyDictionaries(t *testing.T) {
	set := dict.EmptySet()
	f := ff(local4, 1, asLocal, ext4, 2, asOther)
	swapped, v := dict.Policy{Direction: 4, Filter: 4}.Apply(set, &f)
	assert.False(t, swapped)
	assert.Equal(t, dict.DropFilter, v)
	swapped, v = dict.Policy{Direction: 4, Exclude: 4}.Apply(set, &f)
	assert.False(t, swapped)
	assert.Equal(t, dict.Keep, v)
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]dict.Mode{"0": 0, "off": 0, "1": 1, "as": 1, "2": 2, "cidr": 2, "3": 3, "both": 3, "4": 4, "either": 4} {
		got, err := dict.ParseMode(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"5", "-1", "", "CIDR", "any"} {
		_, err := dict.ParseMode(in)
		assert.Error(t, err, in)
	}
	assert.Error(t, dict.Policy{Filter: 5}.Validate())
	assert.True(t, dict.Policy{}.Off())
}

// Apply and Login allocate nothing per row.
func TestApplyAllocs(t *testing.T) {
	set := testSet(t, map[string]string{dict.SubnetsLocal: "10.0.0.0/8\tL\n", dict.AsnumLocal: "64500\tA\n",
		dict.VChannelName: "7\tSeven\n"})
	p := dict.Policy{Direction: 4, Filter: 4, Exclude: 4}
	lp := dict.LoginPolicy{Replace: dict.LoginVChannel}
	allocs := testing.AllocsPerRun(100, func() {
		f := ff(ext4, 443, asOther, local4, 50000, asLocal)
		if swapped, v := p.Apply(set, &f); !swapped || v != dict.Keep {
			t.Fatal("wrong verdict")
		}
		if lp.Login(set, "", 4242) != "4242" {
			t.Fatal("wrong login")
		}
	})
	assert.Zero(t, allocs)
}
