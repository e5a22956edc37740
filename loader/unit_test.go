package loader_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
)

func TestSnakeCase(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		assert.Equal(t, want, loader.SnakeCase(in))
	}
	f("sourceIPv4Address", "source_ipv4_address")
	f("postNATSourceIPv4Address", "post_nat_source_ipv4_address")
	f("postNAPTSourceTransportPort", "post_napt_source_transport_port")
	f("bgpSourceAsNumber", "bgp_source_as_number")
	f("flowStartMilliseconds", "flow_start_milliseconds")
	f("dnsIpSource", "dns_ip_source")
	f("timeStamp", "time_stamp")
	f("dot1qVlanId", "dot1q_vlan_id")
	f("ttl", "ttl")
}

func TestConfigValidate(t *testing.T) {
	cfg := config.Default().Loader
	require.NoError(t, cfg.Validate())
	cfg.Parallel, cfg.AfterLoad, cfg.BatchRows, cfg.ClickHouse = 0, "keep", 2_000_000, "127.0.0.1:8123"
	err := cfg.Validate()
	require.Error(t, err)
	for _, key := range []string{"loader.parallel", "loader.after_load", "loader.batch_rows", "loader.clickhouse"} {
		assert.Contains(t, err.Error(), key)
	}
}

// The bitmask config accepts names the fields the loader keeps.
func TestNATAggFieldsMatchConfig(t *testing.T) {
	assert.Equal(t, config.NATAggFieldsAll, 1<<len(loader.NATAggFields)-1)
}

// Every field of every reference template has a column: nothing of the DPI
// reference is skipped.
func TestReferenceTemplatesHaveColumns(t *testing.T) {
	for _, s := range dpisim.Streams() {
		for _, v6 := range []bool{false, true} {
			fields, err := dpisim.Fields(s, v6)
			require.NoError(t, err)
			cols := loader.TableColumns(string(s))
			require.NotNil(t, cols, "table %s", s)
			for _, f := range fields {
				e := ipfix.LookupElement(f.EnterpriseNumber, f.ID)
				require.NotNil(t, e, "%s field %d", s, f.ID)
				name := loader.SnakeCase(e.Name)
				if e.Type == ipfix.IPv4Address && f.Length == 16 {
					name += "_v6"
				}
				assert.Contains(t, cols, name, "stream %s ipv6 %v", s, v6)
			}
		}
	}
}

// Metric names follow the project's rules (ipfix_loader_ prefix, snake_case) and
// each one is in the README's loader metrics table.
func TestMetricNames(t *testing.T) {
	l, err := loader.New(config.Default().Loader, loader.Options{})
	require.NoError(t, err)
	names := l.Metrics().ListMetricNames()
	require.NotEmpty(t, names)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, n := range names {
		base := n
		if i := strings.IndexByte(n, '{'); i >= 0 {
			base = n[:i]
		}
		assert.True(t, strings.HasPrefix(base, "ipfix_loader_"), n)
		assert.Regexp(t, `^[a-z_]+$`, base)
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if doc := strings.TrimSuffix(base, suffix); doc != base && strings.HasSuffix(doc, "_seconds") {
				base = doc
			}
		}
		assert.Contains(t, string(readme), "`"+base+"`", "README lacks %s", base)
	}
}
