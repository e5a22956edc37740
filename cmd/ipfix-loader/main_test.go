package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

func TestFromConfig(t *testing.T) {
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
`), "test.toml")
	require.NoError(t, err)
	cfg := fromConfig(c.Loader)
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
	require.NoError(t, cfg.Validate())
}

func TestRunRejectsBadFlags(t *testing.T) {
	assert.Error(t, run([]string{"-no-such-flag"}))
	assert.Error(t, run([]string{"-clickhouse", "http://127.0.0.1:1", "frobnicate"}))
	assert.Error(t, run([]string{"-retention", "soon", "-once"}))
}
