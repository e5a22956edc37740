package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cliResult is what a short run of the binary printed and its exit status.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary in an empty directory and waits at most timeout for
// it to exit: a command line that is not a daemon's must not start one (it
// would record into ./dump of that directory).
func runCLI(t *testing.T, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ipfix-balancer %q still running after %v (started a daemon?); stderr:\n%s", args, timeout, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	_, statErr := os.Stat(filepath.Join(dir, "dump"))
	assert.True(t, os.IsNotExist(statErr), "ipfix-balancer %q created ./dump", args)
	return cliResult{stdout.String(), stderr.String(), code}
}

// A forgotten -config, "help" or a misspelt subcommand is an error naming the
// stray argument, with the usage; it never starts the default daemon.
func TestStrayArgumentsAreAnError(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		stray string
	}{
		{[]string{"balancer.toml"}, "balancer.toml"},
		{[]string{"convert-conifg", "old.env"}, "convert-conifg"},
		{[]string{"-config", "x.toml", "extra"}, "extra"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, 5*time.Second, tc.args...)
			assert.Equal(t, 2, r.code)
			assert.Contains(t, r.stderr, "unexpected argument "+strconv.Quote(tc.stray))
			assert.Contains(t, r.stderr, "usage:")
			assert.Empty(t, r.stdout)
		})
	}
}

// "help", -h and -help print the usage and exit 0, as ipfix-loader and
// ipfix-gen do.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			r := runCLI(t, 5*time.Second, arg)
			assert.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
			assert.Contains(t, r.stdout+r.stderr, "usage:")
			assert.Contains(t, r.stdout+r.stderr, "convert-config")
		})
	}
}

// -control-socket overrides [balancer] control_socket, so that a development
// run (make run) never reaches the service's socket under /run.
func TestControlSocketFlag(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "dev.sock")
	r := runCLI(t, 5*time.Second, "-control-socket", sock, "-print-config")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, fmt.Sprintf("control_socket = %q", sock))
	assert.NotContains(t, r.stdout, "/run/ipfix-balancer")

	long := "/tmp/" + strings.Repeat("x", 120) + ".sock"
	r = runCLI(t, 5*time.Second, "-control-socket", long, "-check-config")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "balancer.control_socket")
}

// Before the first reload the reload timestamp is the start time, not the
// zero time.Time (-62135596800).
func TestReloadTimestampBeforeFirstReload(t *testing.T) {
	dir := t.TempDir()
	port, metricsPort := freePort(t), freePort(t)
	config := filepath.Join(dir, "balancer.toml")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`
[metrics]
listen = "127.0.0.1:%d"
[balancer]
control_socket = %q
[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:%d"
[receiver.recording]
dir = %q
`, metricsPort, filepath.Join(dir, "control.sock"), port, filepath.Join(dir, "dump"))), 0o600))
	before := time.Now().Unix()
	startDaemon(t, config)

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^ipfix_balancer_config_last_reload_success_timestamp_seconds (\S+)$`).FindSubmatch(body)
	require.NotNil(t, m, "no reload timestamp in /metrics:\n%s", body)
	got, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, got, float64(before), "reload timestamp before the first reload")
	assert.LessOrEqual(t, got, float64(time.Now().Unix()))
}

// -check-config accepts a cpu the machine lacks (the receiver runs unpinned)
// but warns, naming the receiver.
func TestCheckConfigWarnsMissingCPU(t *testing.T) {
	config := filepath.Join(t.TempDir(), "balancer.toml")
	require.NoError(t, os.WriteFile(config, []byte("[[receiver]]\nstream = \"fullflow\"\ncpu = 1023\nrecording.dir = \"d\"\n"), 0o600))
	r := runCLI(t, 5*time.Second, "-config", config, "-check-config")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "warning: receiver[fullflow/0].cpu: 1023: no cpu 1023 on this machine")
	assert.Contains(t, r.stdout, "configuration ok: 1 receivers")
}

// An exporter that closes its connection is a normal end, logged without an
// error (not err="read: EOF").
func TestExporterCloseIsNotAnError(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	config := filepath.Join(dir, "balancer.toml")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`
[metrics]
listen = ""
[balancer]
control_socket = %q
[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:%d"
[receiver.recording]
dir = %q
`, filepath.Join(dir, "control.sock"), port, filepath.Join(dir, "dump"))), 0o600))
	d := startDaemon(t, config)
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	d.WaitLog("exporter connected", 1)
	require.NoError(t, conn.Close())
	d.WaitLog("exporter disconnected", 1)
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, "exporter disconnected") {
			assert.NotContains(t, line, "err=", "a normal close logged as an error")
		}
	}
}

// makeDryRun returns the commands `make -n target` would run at the root of
// the checkout.
func makeDryRun(t *testing.T, target string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-n", "--no-print-directory", target)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make -n %s:\n%s", target, out)
	return string(out)
}

// `make run` gives the daemon a control socket of its own: with the system
// one it would take over the sessions of the service running on the host.
func TestMakeRunHasItsOwnControlSocket(t *testing.T) {
	runtimeDir := t.TempDir()
	out := makeDryRun(t, "run", "XDG_RUNTIME_DIR="+runtimeDir)
	assert.Contains(t, out, "bin/ipfix-balancer -control-socket "+filepath.Join(runtimeDir, "ipfix-balancer-dev.sock"))
	assert.NotContains(t, out, "/run/ipfix-balancer/")

	out = makeDryRun(t, "run", "XDG_RUNTIME_DIR=")
	abs, err := filepath.Abs(filepath.Join("..", "..", "bin", "control.sock"))
	require.NoError(t, err)
	assert.Contains(t, out, "bin/ipfix-balancer -control-socket "+abs)
}

// `make clean` removes what the build made, never ./dump: recorded data.
func TestMakeCleanKeepsDumps(t *testing.T) {
	out := makeDryRun(t, "clean")
	assert.Contains(t, out, "rm -rf bin dist")
	assert.NotContains(t, out, "dump")
}
