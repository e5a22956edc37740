package main_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// writeAutoConfig writes a RoundRobin fullflow receiver to two subreceivers
// on 127.0.0.1, with balancer_auto as auto, metrics and the control socket on.
func writeAutoConfig(t *testing.T, path, metricsAddr, control, dumpDir string, listen, sub1, sub2 int, auto bool) {
	t.Helper()
	cfg := fmt.Sprintf(`
[metrics]
listen = %q
[balancer]
control_socket = %q
shutdown_timeout = "5s"
stats_every = "0s"

[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:%d"
mode = "RoundRobin"
subreceivers = ["127.0.0.1:%d", "127.0.0.1:%d"]
balancer_auto = %t
[receiver.recording]
dir = %q
`, metricsAddr, control, listen, sub1, sub2, auto, dumpDir)
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(cfg), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Balancer auto (legacy BALANCER_AUTO=Enabled): the balancer and the store on
// one server. A RoundRobin receiver with balancer_auto to two subreceivers on
// 127.0.0.1 makes the process listen on both and record what reaches each,
// as fullflow/1000 and fullflow/2000; their dumps together hold every record
// ipfix-gen sent, exactly once. A reload that clears balancer_auto stops the
// recorders, one that sets it again starts them.
func TestBalancerAutoRecordsLocally(t *testing.T) {
	gen, cleanup, err := testenv.Build("ipfix-gen", "../ipfix-gen")
	require.NoError(t, err)
	t.Cleanup(cleanup)
	capture := writeCapture(t, dpisim.Fullflow, 20000)
	msgs, records := readCapture(t, capture)
	want := map[string]int{}
	total := 0
	for _, fps := range records {
		for _, fp := range fps {
			want[fp]++
			total++
		}
	}

	dir := t.TempDir()
	dumpDir := filepath.Join(dir, "dump")
	port, sub1, sub2 := freePort(t), freePort(t), freePort(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := filepath.Join(dir, "control.sock")
	config := filepath.Join(dir, "balancer.toml")
	writeAutoConfig(t, config, metricsAddr, control, dumpDir, port, sub1, sub2, true)

	check := runCLI(t, 30*time.Second, "-config", config, "-check-config")
	require.Equal(t, 0, check.code, check.stderr)
	assert.Contains(t, check.stdout, fmt.Sprintf("receiver fullflow/0 subreceiver tcp 127.0.0.1:%d: recorded here as fullflow/1000 (balancer_auto)", sub1))
	assert.Contains(t, check.stdout, fmt.Sprintf("receiver fullflow/0 subreceiver tcp 127.0.0.1:%d: recorded here as fullflow/2000 (balancer_auto)", sub2))
	assert.Contains(t, check.stdout, "configuration ok: 3 receivers")

	d := startDaemon(t, config)
	up := func(sub int) float64 {
		return metricIn(t, testenv.Scrape(t, metricsAddr),
			`ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="127.0.0.1:`+strconv.Itoa(sub)+`"}`)
	}
	testenv.WaitFor(t, 20*time.Second, "both local recorders up", func() bool { return up(sub1) == 1 && up(sub2) == 1 })

	// Cleared by a reload: the recorders stop listening; set again: they are back.
	writeAutoConfig(t, config, metricsAddr, control, dumpDir, port, sub1, sub2, false)
	d.Signal(syscall.SIGHUP)
	d.WaitLog("configuration reloaded", 1)
	d.WaitLog("receiver stopped", 2) // fullflow/1000 and fullflow/2000
	assert.False(t, listening(sub1) || listening(sub2), "removed recorders still listening")
	writeAutoConfig(t, config, metricsAddr, control, dumpDir, port, sub1, sub2, true)
	d.Signal(syscall.SIGHUP)
	d.WaitLog("configuration reloaded", 2)
	testenv.WaitFor(t, 20*time.Second, "both local recorders up again", func() bool { return up(sub1) == 1 && up(sub2) == 1 })

	var out, errOut bytes.Buffer
	cmd := exec.Command(gen, "-replay", capture, "-loops", "1", "-rate", strconv.Itoa(len(msgs)/3+1), "-to", fmt.Sprintf("tcp://127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "ipfix-gen:\n%s", errOut.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("ipfix-gen did not end:\n%s", errOut.String())
	}
	assert.Contains(t, out.String(), fmt.Sprintf(`"records":%d`, total))

	written := func(dpi string) float64 {
		return metricIn(t, testenv.Scrape(t, metricsAddr),
			`ipfix_balancer_dump_written_records_total{stream="fullflow",dpi="`+dpi+`"}`)
	}
	testenv.WaitFor(t, 30*time.Second, "every record written", func() bool { return written("1000")+written("2000") >= float64(total) })
	d.Stop() // closes the dumps under their final names

	got := map[string]int{}
	perRecorder := map[int]int{}
	files, err := filepath.Glob(filepath.Join(dump.StreamDir(dumpDir, "fullflow"), "*.ipfix"))
	require.NoError(t, err)
	for _, f := range files {
		n, err := dump.Parse(filepath.Base(f))
		require.NoError(t, err, "dump %s: its name must follow the grammar the loader reads", f)
		require.Equal(t, "fullflow", n.Stream)
		_, recs := readCapture(t, f)
		for _, fps := range recs {
			for _, fp := range fps {
				got[fp]++
				perRecorder[n.DPI]++
			}
		}
	}
	assert.Greater(t, perRecorder[1000], 0, "the recorder of 127.0.0.1:%d got its share", sub1)
	assert.Greater(t, perRecorder[2000], 0, "the recorder of 127.0.0.1:%d got its share", sub2)
	assert.Len(t, perRecorder, 2, "dumps of fullflow/1000 and fullflow/2000 only: %v", perRecorder)
	missing, extra := multisetDiff(got, want)
	assert.Zero(t, missing, "records lost")
	assert.Zero(t, extra, "records duplicated or never sent")
	assert.NotContains(t, d.Log(), "panic")
	assert.False(t, strings.Contains(d.Log(), `"level":"ERROR"`), "errors in the log:\n%s", d.Log())
}
