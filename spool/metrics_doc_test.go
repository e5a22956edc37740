package spool

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsDocumented: every series a spool registers is in the README's
// metrics table and follows the naming rules (counters end in _total,
// gauges do not).
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	set := metrics.NewSet()
	newMetrics(set, labels)
	names := set.ListMetricNames()
	require.NotEmpty(t, names)
	nameRE := regexp.MustCompile(`^ipfix_balancer_[a-z0-9_]+$`)
	for _, full := range names {
		n, _, _ := strings.Cut(full, "{")
		assert.Regexp(t, nameRE, n)
		assert.Contains(t, string(readme), "| `"+n+"` |", "README metrics table lacks %s", n)
	}
	for _, r := range dropReasons {
		assert.Contains(t, string(readme), "`"+r+"`", "README lacks drop reason %s", r)
	}
}
