package testenv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClickHouseRestartKeepsData(t *testing.T) {
	ch := StartClickHouse(t)
	require.NotEmpty(t, strings.TrimSpace(ch.Query(t, "SELECT version()")))
	ch.Query(t, "CREATE TABLE default.t (x UInt32) ENGINE = MergeTree ORDER BY x")
	ch.Query(t, "INSERT INTO default.t VALUES (1), (2), (3)")

	ch.Stop()
	_, err := ch.Exec("SELECT 1")
	require.Error(t, err, "server must be down after Stop")

	ch.Start()
	require.Equal(t, "3\n", ch.Query(t, "SELECT count() FROM default.t"))
}

func TestClickHouseCluster(t *testing.T) {
	chs := StartClickHouseCluster(t, 2)
	require.Len(t, chs, 2)
	require.NotEqual(t, chs[0].URL, chs[1].URL)
	for i, ch := range chs {
		require.Equal(t, "2\n", ch.Query(t, "SELECT count() FROM system.clusters WHERE cluster = '"+ClusterName+"'"), "server %d", i)
		ch.Query(t, "CREATE TABLE default.t (x UInt32) ENGINE = MergeTree ORDER BY x")
	}
	chs[0].Query(t, "INSERT INTO default.t VALUES (1)")
	chs[1].Query(t, "INSERT INTO default.t VALUES (2), (3)")
	chs[0].Query(t, "CREATE TABLE default.d AS default.t ENGINE = Distributed("+ClusterName+", default, t)")
	require.Equal(t, "3\t6\n", chs[0].Query(t, "SELECT count(), sum(x) FROM default.d"))
}
