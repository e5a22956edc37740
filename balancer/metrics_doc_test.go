package balancer

import (
	"bytes"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

var metricName = regexp.MustCompile(`^ipfix_balancer_[a-z0-9]+(_[a-z0-9]+)*$`)

// Every series the balancer registers follows the naming rules (STYLE.md §7) and
// is documented in the README's metrics table, as CoreDNS lints its plugins' metrics.
func TestMetricsDocumented(t *testing.T) {
	dir := t.TempDir()
	sub := func(addr string, p config.Proto) config.Subreceiver { return config.Subreceiver{Addr: addr, Proto: p} }
	base := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), QueueBytes: 1 << 20, MTU: 1500}
	rr := base
	rr.Mode = config.RoundRobin
	rr.Subreceivers = []config.Subreceiver{sub("127.0.0.1:9", config.TCP), sub("127.0.0.1:9", config.UDP)}
	udp := base
	udp.Stream, udp.Proto, udp.Mode = "dnsflow", config.UDP, config.All
	udp.Subreceivers = []config.Subreceiver{sub("127.0.0.1:9", config.TCP)}
	rec := base
	rec.Stream, rec.Mode = "clickstream", config.Recording
	rec.Recording = config.Recorder{Dir: dir, RotateEvery: 600e9, QueueBytes: 1 << 20, Export: []config.Subreceiver{sub("127.0.0.1:9", config.TCP)}}

	var sets []*metrics.Set
	for _, rc := range []config.Receiver{rr, udp, rec} {
		r, err := New(rc, Options{})
		require.NoError(t, err)
		sets = append(sets, r.set)
	}
	b, err := NewBalancer(&config.Config{}, Options{})
	require.NoError(t, err)
	sets = append(sets, b.set)

	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	types := map[string]string{}
	for _, s := range sets {
		var buf bytes.Buffer
		s.WritePrometheus(&buf)
		for _, line := range strings.Split(buf.String(), "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
				types[f[2]] = f[3]
			}
		}
	}
	require.NotEmpty(t, types)
	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		assert.Regexp(t, metricName, n)
		switch types[n] {
		case "counter":
			assert.True(t, strings.HasSuffix(n, "_total"), "counter %s must end in _total", n)
		case "gauge":
			assert.False(t, strings.HasSuffix(n, "_total"), "gauge %s must not end in _total", n)
		}
		assert.Contains(t, string(readme), "`"+n+"`", "README metrics table lacks %s", n)
	}
	t.Logf("%d metric names checked", len(names))
}
