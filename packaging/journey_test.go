package packaging

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// TestOperatorJourney is what an operator does with the package, with the files
// it installs: the shipped configuration (only ports and directories moved, by
// testenv.ShippedConfig), the wrappers without systemd, ipfix-gen as the DPI and
// ipfix-loader into ClickHouse. While the DPI streams 50 k records/s over TCP, the
// balancer is reloaded 10 times and restarted 5 times through
// ipfix-balancer-restart (each restart a new PID, /metrics answering between
// them); then it is stopped, the loader loads every dump, and ClickHouse holds
// exactly the records the DPI sent; a second loader run adds none.
func TestOperatorJourney(t *testing.T) {
	requireTool(t, "pidof")
	requireTool(t, "setsid")
	root := extractDeb(t)
	ch := testenv.StartClickHouse(t)
	for _, shipped := range []string{
		filepath.Join(root, "etc/ipfix-balancer/balancer.toml"), // = packaging/balancer.toml
		testenv.RepoFile(t, "config/default.toml"),
	} {
		t.Run(filepath.Base(shipped), func(t *testing.T) {
			database := "journey_" + strings.TrimSuffix(filepath.Base(shipped), ".toml")
			journey(t, root, shipped, ch, database)
		})
	}
}

func journey(t *testing.T, root, shipped string, ch *testenv.ClickHouse, database string) {
	s := testenv.ShippedConfig(t, shipped, testenv.WithClickHouse(ch.URL))
	require.NotEmpty(t, s.Metrics, "the shipped file serves metrics")
	require.NotEmpty(t, s.ControlSocket, "the shipped file hands over on restart")
	// The database is the only loader setting moved besides ports and dirs: both
	// subtests share one server.
	text := readFile(t, s.Path)
	require.Equal(t, 1, strings.Count(text, `database = "ipfix"`))
	require.NoError(t, os.WriteFile(s.Path, []byte(strings.Replace(text, `database = "ipfix"`, `database = "`+database+`"`, 1)), 0o640))

	dir := filepath.Dir(s.Path)
	bin := filepath.Join(root, "usr/bin/ipfix-balancer")
	logFile := filepath.Join(dir, "balancer.log")
	t.Cleanup(func() {
		for _, pid := range balancerPids(bin) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	env := wrapperEnv(bin, s.Path, logFile, dir)
	balancerLog := func() string { return readFile(t, logFile) }
	wrapper := func(name string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "usr/bin", name))
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s\nbalancer log:\n%s", name, out, balancerLog())
		return string(out)
	}
	defer func() {
		if t.Failed() {
			t.Logf("balancer log:\n%s", balancerLog())
		}
	}()

	out := wrapper("ipfix-balancer-restart") // nothing runs: it starts one
	require.Contains(t, out, "started")
	pid := onePid(t, bin, balancerLog)
	fullflow := s.Receivers["fullflow/0"]
	require.NotEmpty(t, fullflow)
	alive := func() error {
		if len(balancerPids(bin)) == 0 {
			return fmt.Errorf("no balancer running\n%s", balancerLog())
		}
		return nil
	}
	waitListening(t, fullflow, alive).Close()
	testenv.Scrape(t, s.Metrics)

	// The DPI: 50 k records/s for 16 s, over one TCP session.
	const records, rate = 800_000, 50_000
	gen := exec.Command(filepath.Join(root, "usr/bin/ipfix-gen"), "-stream", "fullflow",
		"-records", strconv.Itoa(records), "-rate", strconv.Itoa(rate), "-progress-every", "0",
		"-to", "tcp://"+fullflow)
	var genOut strings.Builder
	gen.Stdout = &genOut
	genErr, err := gen.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, gen.Start())
	genLog := make(chan string, 1)
	go func() { b, _ := io.ReadAll(genErr); genLog <- string(b) }()
	genDone := make(chan error, 1)
	go func() { genDone <- gen.Wait() }()
	t.Cleanup(func() { _ = gen.Process.Kill() })

	// 10 reloads, each changing a setting the recorder applies live, and 5
	// restarts, spread over the stream.
	restarted := regexp.MustCompile(`restarted: (\d+) -> (\d+)`)
	for i := range 15 {
		time.Sleep(time.Second)
		if i%3 == 2 {
			out := wrapper("ipfix-balancer-restart")
			m := restarted.FindStringSubmatch(out)
			require.NotNil(t, m, "restart %d: %s", i/3+1, out)
			require.Equal(t, strconv.Itoa(pid), m[1])
			next, _ := strconv.Atoi(m[2])
			require.NotEqual(t, pid, next, "each restart is a new process")
			pid = next
		} else {
			setRotateRecords(t, s.Path, 100_000+i*10_000)
			out := wrapper("ipfix-balancer-reload")
			require.Contains(t, out, "sent SIGHUP to "+strconv.Itoa(pid))
		}
		testenv.Scrape(t, s.Metrics)
		require.Equal(t, pid, onePid(t, bin, balancerLog))
	}

	select {
	case err := <-genDone:
		require.NoError(t, err, "ipfix-gen: %s", <-genLog)
	case <-time.After(60 * time.Second):
		t.Fatal("ipfix-gen did not finish within 60 s")
	}
	var sum struct{ Records, Reconnects int64 }
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(genOut.String())), &sum), genOut.String())
	require.Equal(t, int64(records), sum.Records)
	assert.Zero(t, sum.Reconnects, "the DPI's session never drops")

	// The DPI has closed its session: the balancer has read everything once the
	// session is gone (its counters start again with each process, so they cannot
	// tell), and a stop then writes it all.
	require.Eventually(t, func() bool {
		return testenv.MetricSum(testenv.Scrape(t, s.Metrics), `ipfix_balancer_exporter_sessions{stream="fullflow"`) == 0
	}, 30*time.Second, 100*time.Millisecond, "the DPI's session is still open in the balancer")
	out = wrapper("ipfix-balancer-stop")
	require.Contains(t, out, "stopped "+strconv.Itoa(pid))
	require.Empty(t, balancerPids(bin))
	log := balancerLog()
	assert.NotContains(t, log, "panic")
	assert.NotContains(t, log, "level=ERROR")
	assert.Empty(t, findFiles(t, s.DumpDir, ".part"), "a clean stop leaves no .part dump")

	// The loader, as the package installs it, on the same file.
	loader := func() string {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "usr/bin/ipfix-loader"), "-config", s.Path, "-once")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "ipfix-loader -once: %s", out)
		return string(out)
	}
	loader()
	count := func() int {
		n, err := strconv.Atoi(strings.TrimSpace(ch.Query(t, "SELECT count() FROM "+database+".fullflow")))
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, records, count(), "ClickHouse holds every record the DPI sent, once")
	assert.Empty(t, findFiles(t, s.DumpDir, ".ipfix", "bad"), "no dump quarantined")
	loader()
	assert.Equal(t, records, count(), "a second loader run adds nothing")
}

// setRotateRecords sets rotate_records in every recording section of path: a
// setting the dump writer applies at reload.
func setRotateRecords(t *testing.T, path string, n int) {
	t.Helper()
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "rotate_records = ") {
			continue
		}
		out.WriteString(line + "\n")
		if strings.TrimSpace(line) == "[receiver.recording]" {
			fmt.Fprintf(&out, "rotate_records = %d\n", n)
		}
	}
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(out.String()), 0o640))
	require.NoError(t, os.Rename(tmp, path))
}

func onePid(t *testing.T, bin string, log func() string) int {
	t.Helper()
	pids := balancerPids(bin)
	require.Len(t, pids, 1, "balancers running\n%s", log())
	return pids[0]
}

// findFiles lists the files under dir whose names end in suffix, in a directory
// named in (any, when in is empty).
func findFiles(t *testing.T, dir, suffix string, in ...string) []string {
	t.Helper()
	var found []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, suffix) {
			return nil
		}
		if len(in) == 0 || filepath.Base(filepath.Dir(p)) == in[0] {
			found = append(found, p)
		}
		return nil
	})
	return found
}
