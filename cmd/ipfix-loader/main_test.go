package main

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
)

// The [loader] section is the loader's configuration as it is.
func TestLoaderSection(t *testing.T) {
	c, err := config.Parse([]byte(`
[loader]
dir = "/data/dump"
clickhouse = "http://10.0.0.5:8123"
database = "qoestor"
user = "loader"
password = "secret"
parallel = 4
after_load = "delete"
retention = "48h"
batch_rows = 50000
poll_every = "2s"
cluster = "ipfix"
sharding_key = "login"
aggregate_retention = "8760h"
fullflow_agg_fields = ["login", "protocol_identifier"]
fullflow_agg_period = "15m"
clickstream_agg_fields = ["hostname"]
clickstream_agg_period = "10m"
`), "test.toml")
	require.NoError(t, err)
	cfg := c.Loader
	assert.Equal(t, "/data/dump", cfg.Dir)
	assert.Equal(t, "http://10.0.0.5:8123", cfg.ClickHouse)
	assert.Equal(t, "qoestor", cfg.Database)
	assert.Equal(t, "loader", cfg.User)
	assert.Equal(t, "secret", cfg.Password)
	assert.Equal(t, 4, cfg.Parallel)
	assert.Equal(t, "delete", cfg.AfterLoad)
	assert.Equal(t, 48*time.Hour, cfg.Retention)
	assert.Equal(t, 50000, cfg.BatchRows)
	assert.Equal(t, 2*time.Second, cfg.PollEvery)
	assert.Equal(t, "ipfix", cfg.Cluster)
	assert.Equal(t, "login", cfg.ShardingKey)
	assert.Equal(t, 8760*time.Hour, cfg.AggregateRetention)
	assert.Equal(t, config.Aggregate{Fields: []string{"login", "protocol_identifier"}, Period: 15 * time.Minute}, cfg.FullflowAgg)
	assert.Equal(t, config.Aggregate{Fields: []string{"hostname"}, Period: 10 * time.Minute}, cfg.ClickstreamAgg)
	l, err := loader.New(cfg, loader.Options{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

// The defaults are the legacy collector's aggregates; a field that is no
// column, or a period that does not divide a day, is refused by name.
func TestAggregateConfigChecked(t *testing.T) {
	cfg := config.Default().Loader
	assert.Equal(t, config.Aggregate{Fields: []string{"dpi", "login", "source_ipv4_address", "source_ipv6_address", "hostname",
		"protocol_identifier", "vdpi_proto"}, Period: 5 * time.Minute}, cfg.FullflowAgg)
	assert.Equal(t, config.Aggregate{Fields: []string{"dpi", "login", "hostname"}, Period: time.Hour}, cfg.ClickstreamAgg)
	cfg.FullflowAgg.Fields = []string{"login", "no_such_column"}
	cfg.ClickstreamAgg.Period = 7 * time.Minute
	_, err := loader.New(cfg, loader.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `loader.fullflow_agg_fields: field "no_such_column": not a column of fullflow`)
	assert.Contains(t, err.Error(), `loader.clickstream_agg_period: 7m0s: want whole minutes dividing a day`)
	_, err = config.Parse([]byte("[loader]\nclickstream_agg_period = \"7m\"\n"), "test.toml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "loader.clickstream_agg_period: 7m0s: want whole minutes dividing a day")
}

func TestRunRejectsBadFlags(t *testing.T) {
	assert.Error(t, run([]string{"-no-such-flag"}))
	assert.Error(t, run([]string{"-clickhouse", "http://127.0.0.1:1", "frobnicate"}))
	assert.Error(t, run([]string{"-retention", "soon", "-once"}))
	_, err := configure([]string{"-log-level", "verbose"})
	require.Error(t, err, "an unknown -log-level was taken as info")
	assert.Contains(t, err.Error(), `-log-level "verbose"`)
	s, err := configure([]string{"-log-level", "warn"})
	require.NoError(t, err)
	assert.Equal(t, slog.LevelWarn, s.level)
}

// The legacy collector's .env is read as it is: its NAT settings reach the
// loader, and convert-config prints the TOML that says the same.
func TestLegacyCollectorEnv(t *testing.T) {
	const env = "../../config/testdata/legacy/collector-nat/in.env"
	s, err := configure([]string{"-config", env})
	require.NoError(t, err)
	assert.Equal(t, config.LegacyDumpDir, s.cfg.Dir)
	assert.Equal(t, config.NAT{ImportFromFullflow: true, AggFields: 0x241, AggInterval: 15 * time.Minute}, s.cfg.NAT)

	var out, errOut bytes.Buffer
	require.NoError(t, convertConfig([]string{env}, &out, &errOut))
	assert.Empty(t, errOut.String())
	want, err := os.ReadFile("../../config/testdata/legacy/collector-nat/want.toml")
	require.NoError(t, err)
	assert.Equal(t, string(want), strings.Replace(out.String(), env, "in.env", 1), "the golden of config's .env import")
	// The printed TOML configures the loader as the .env does.
	c, err := config.Parse(out.Bytes(), "converted.toml")
	require.NoError(t, err)
	assert.Equal(t, s.cfg, c.Loader)

	// The manual's default .env: NAT_IMPORT_FROM_FULLFLOW without a value
	// keeps the default, with a warning naming the line.
	out.Reset()
	require.NoError(t, convertConfig([]string{"../../config/testdata/legacy/collector-default/in.env"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "in.env:79: NAT_IMPORT_FROM_FULLFLOW: no value (no '='): the default stays")

	var ue usageError
	assert.ErrorAs(t, convertConfig(nil, &out, &errOut), &ue)
}
