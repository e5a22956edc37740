package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loaderSettings is the loader configuration the command line s runs with,
// by the key of the [loader] section (and, for what no file sets, the name of
// the setting): what the shipped files must keep meaning whatever the Go types.
func loaderSettings(s *setup) map[string]any {
	c, o := s.cfg, s.opts.WithDefaults()
	return map[string]any{
		"dir":                                c.Dir,
		"clickhouse":                         c.ClickHouse,
		"database":                           c.Database,
		"user":                               c.User,
		"password":                           c.Password,
		"parallel":                           c.Parallel,
		"after_load":                         c.AfterLoad,
		"retention":                          c.Retention,
		"aggregate_retention":                c.AggregateRetention,
		"fullflow_agg_fields":                c.FullflowAgg.Fields,
		"fullflow_agg_period":                c.FullflowAgg.Period,
		"clickstream_agg_fields":             c.ClickstreamAgg.Fields,
		"clickstream_agg_period":             c.ClickstreamAgg.Period,
		"batch_rows":                         c.BatchRows,
		"poll_every":                         c.PollEvery,
		"cluster":                            c.Cluster,
		"sharding_key":                       c.ShardingKey,
		"shards":                             c.Shards,
		"metrics_listen":                     s.metrics,
		"dictionaries":                       c.Dictionaries,
		"traffic_dir_def_mode":               c.TrafficDirDefMode,
		"subscriber_filter_mode":             c.SubscriberFilterMode,
		"subscriber_exclude_mode":            c.SubscriberExcludeMode,
		"replace_login_with_vchannel":        c.ReplaceLoginWithVChannel,
		"use_dic_when_replacing_login":       c.UseDicWhenReplacingLogin,
		"nat_import_from_fullflow":           c.NAT.ImportFromFullflow,
		"nat_agg_log_fields_to_save_bitmask": int(c.NAT.AggFields),
		"nat_agg_log_group_time_interval":    c.NAT.AggInterval,
		// Not in the file: flags and the loader's own defaults (zero Options
		// take the loader's).
		"settle":                o.Settle,
		"retry_max":             o.RetryMax,
		"give_up_after":         o.GiveUpAfter,
		"dictionary_poll_every": o.DictionaryPollEvery,
	}
}

// Every key of the shipped files (config/default.toml, embedded or named by
// -config, packaging/balancer.toml) and of the legacy collector's .env
// reaches the loader with the value the file states, and what a file leaves
// out has the default that default.toml states (in a comment for the
// aggregates).
func TestShippedFilesConfigureTheLoader(t *testing.T) {
	shipped := map[string]any{
		"dir":                                "dump",
		"clickhouse":                         "http://127.0.0.1:8123",
		"database":                           "ipfix",
		"user":                               "default",
		"password":                           "",
		"parallel":                           2,
		"after_load":                         "move",
		"retention":                          24 * time.Hour,
		"aggregate_retention":                time.Duration(0),
		"fullflow_agg_fields":                []string{"dpi", "login", "source_ipv4_address", "source_ipv6_address", "hostname", "protocol_identifier", "vdpi_proto"},
		"fullflow_agg_period":                5 * time.Minute,
		"clickstream_agg_fields":             []string{"dpi", "login", "hostname"},
		"clickstream_agg_period":             time.Hour,
		"batch_rows":                         100000,
		"poll_every":                         5 * time.Second,
		"cluster":                            "",
		"sharding_key":                       "login",
		"shards":                             []string(nil),
		"metrics_listen":                     "127.0.0.1:9741",
		"dictionaries":                       "",
		"traffic_dir_def_mode":               0,
		"subscriber_filter_mode":             0,
		"subscriber_exclude_mode":            0,
		"replace_login_with_vchannel":        0,
		"use_dic_when_replacing_login":       false,
		"nat_import_from_fullflow":           false,
		"nat_agg_log_fields_to_save_bitmask": 0,
		"nat_agg_log_group_time_interval":    5 * time.Minute,
		"settle":                             2 * time.Second,
		"retry_max":                          10 * time.Second,
		"give_up_after":                      time.Duration(0),
		"dictionary_poll_every":              time.Duration(0),
	}
	with := func(changes map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range shipped {
			m[k] = v
		}
		for k, v := range changes {
			require.Contains(t, m, k)
			m[k] = v
		}
		return m
	}
	legacy := map[string]any{"dir": "/var/lib/ipfix-balancer/dump", "database": "qoestor"}
	for _, tc := range []struct {
		name string
		args []string
		want map[string]any
	}{
		{"embedded default.toml", nil, shipped},
		{"config/default.toml", []string{"-config", "../../config/default.toml"}, shipped},
		{"packaging/balancer.toml", []string{"-config", "../../packaging/balancer.toml"},
			with(map[string]any{"dir": "/var/lib/ipfix-balancer/dump"})},
		{"legacy collector .env", []string{"-config", "../../config/testdata/legacy/collector-default/in.env"}, with(legacy)},
		{"legacy collector .env with NAT", []string{"-config", "../../config/testdata/legacy/collector-nat/in.env"},
			with(map[string]any{"dir": "/var/lib/ipfix-balancer/dump", "database": "qoestor",
				"nat_import_from_fullflow": true, "nat_agg_log_fields_to_save_bitmask": 0x241,
				"nat_agg_log_group_time_interval": 15 * time.Minute})},
		{"legacy .env with a traffic direction", []string{"-config", "../../config/testdata/legacy/syntax-variants/in.env"},
			with(map[string]any{"dir": "/var/lib/ipfix-balancer/dump", "database": "qoestor",
				"dictionaries": "/var/qoestor/backend/etc/db", "traffic_dir_def_mode": 2})},
		{"flags over packaging/balancer.toml", []string{"-config", "../../packaging/balancer.toml", "-once",
			"-dir", "/data", "-clickhouse", "http://10.0.0.5:8123", "-database", "db", "-parallel", "3",
			"-batch-rows", "5000", "-after-load", "delete", "-cluster", "c", "-shards", "http://a:8123,http://b:8123",
			"-metrics", "", "-retry-for", "7s", "-retention", "1h", "-settle", "3s"},
			with(map[string]any{"dir": "/data", "clickhouse": "http://10.0.0.5:8123", "database": "db", "parallel": 3,
				"batch_rows": 5000, "after_load": "delete", "cluster": "c", "shards": []string{"http://a:8123", "http://b:8123"},
				"metrics_listen": "", "give_up_after": 7 * time.Second, "retention": time.Hour, "settle": 3 * time.Second})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := configure(tc.args)
			require.NoError(t, err)
			got := loaderSettings(s)
			for k, want := range tc.want {
				assert.Equal(t, want, got[k], "%s", k)
			}
			assert.Len(t, got, len(tc.want))
		})
	}
}
