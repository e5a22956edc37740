package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

var binary string

// TestMain builds ipfix-loader once; the CLI tests run it as a real process.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinary(m, &binary, "ipfix-loader", "."))
}

// Without -config the loader takes the [loader] section of the embedded
// default configuration, the one README and `make run` use: dump dir "dump"
// (where the default receivers record), metrics on 127.0.0.1:9741.
func TestDefaultsAreTheEmbeddedConfig(t *testing.T) {
	s, err := configure([]string{"-once"})
	require.NoError(t, err)
	def := config.Default().Loader
	assert.Equal(t, def.Dir, s.cfg.Dir)
	assert.Equal(t, "dump", s.cfg.Dir)
	assert.Equal(t, def.ClickHouse, s.cfg.ClickHouse)
	assert.Equal(t, def.Database, s.cfg.Database)
	assert.Equal(t, def.MetricsListen, s.metrics)
	assert.Equal(t, "127.0.0.1:9741", s.metrics)

	// Flags still override.
	s, err = configure([]string{"-dir", "/data/dump", "-metrics", ""})
	require.NoError(t, err)
	assert.Equal(t, "/data/dump", s.cfg.Dir)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// After `make run` (dumps in ./dump), `ipfix-loader -once` with ClickHouse
// down takes its lock in ./dump, retries for a bounded time and ends with a
// non-zero status and a clear error: a cron job must end.
func TestOnceEndsWhenClickHouseIsDown(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dump"), 0o755))
	stderr := runOnceDown(t, dir)
	assert.NotContains(t, stderr, "/var/lib")
	assert.FileExists(t, filepath.Join(dir, "dump", ".ipfix-loader.lock"))
}

// The same with the dump directory named by -dir.
func TestOnceEndsWhenClickHouseIsDownWithDir(t *testing.T) {
	dir := t.TempDir()
	runOnceDown(t, "/", "-dir", dir)
}

// runOnceDown runs ipfix-loader -once in cwd against a ClickHouse that is
// down and checks that it gives up in time with a clear error; it returns
// the stderr.
func runOnceDown(t *testing.T, cwd string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"-once", "-metrics", "", "-clickhouse", "http://" + closedPort(t)}, args...)...)
	cmd.Dir = cwd
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "ipfix-loader -once still running after 60s with ClickHouse down; stderr:\n%s", stderr.String())
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "exit status 0 with ClickHouse down; stderr:\n%s", stderr.String())
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, stderr.String(), "ipfix-loader: clickhouse unreachable")
	t.Logf("gave up after %v", time.Since(start).Round(time.Second))
	return stderr.String()
}

// -h, -help and help print the usage and exit 0; a bad flag or a stray
// argument is a usage error: exit 2, as ipfix-balancer and ipfix-gen do.
func TestUsageExitCodes(t *testing.T) {
	f := func(code int, want string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		assert.Equal(t, code, got, "ipfix-loader %q:\n%s", args, out)
		assert.Contains(t, string(out), want, "ipfix-loader %q", args)
	}
	f(0, "usage: ipfix-loader", "-h")
	f(0, "usage: ipfix-loader", "-help")
	f(0, "usage: ipfix-loader", "help")
	f(2, "flag provided but not defined: -no-such-flag", "-no-such-flag")
	f(2, `unexpected argument "frobnicate"`, "frobnicate")
	f(2, `unexpected argument "loader.toml"`, "-once", "loader.toml")
}

// Before anything was recorded there is no ./dump: the loader says so, not
// "lock dump/.ipfix-loader.lock: no such file or directory".
func TestMissingDumpDirSaysSo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-once", "-metrics", "", "-clickhouse", "http://"+closedPort(t))
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "exit status 0 without a dump directory:\n%s", out)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, string(out), `ipfix-loader: dump directory "dump" does not exist`)
	assert.NotContains(t, string(out), ".ipfix-loader.lock")
}
