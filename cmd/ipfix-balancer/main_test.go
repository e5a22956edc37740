package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

var binary string

// TestMain builds the daemon once; the tests run it as a real process.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinary(m, &binary, "ipfix-balancer", "."))
}

// daemon is a running ipfix-balancer and its successors after restarts. They all
// write to the same log pipe, from which the current PID is read.
type daemon struct {
	t       *testing.T
	config  string
	mu      sync.Mutex
	log     bytes.Buffer
	pids    []int
	started chan int
}

var pidLine = regexp.MustCompile(`ipfix-balancer starting.*pid=(\d+)`)

func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	d := &daemon{t: t, config: config, started: make(chan int, 16)}
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd := exec.Command(binary, "-config", config)
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	_ = pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			d.mu.Unlock()
			if m := pidLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				d.started <- pid
			}
		}
	}()
	go func() { _ = cmd.Wait() }()
	d.pids = append(d.pids, d.waitStarted())
	d.waitLog("balancer running", 1)
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logText())
		}
	})
	return d
}

func (d *daemon) waitStarted() int {
	select {
	case pid := <-d.started:
		return pid
	case <-time.After(20 * time.Second):
		d.t.Fatalf("daemon did not start; log:\n%s", d.logText())
		return 0
	}
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// waitLog waits until the log holds n lines containing s.
func (d *daemon) waitLog(s string, n int) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(d.logText(), s) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("no %d× %q in the log:\n%s", n, s, d.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemon) pid() int { return d.pids[len(d.pids)-1] }

func (d *daemon) signal(sig syscall.Signal) {
	require.NoError(d.t, syscall.Kill(d.pid(), sig))
}

// restart makes the running process start its successor and waits until the
// predecessor has exited.
func (d *daemon) restart() {
	d.t.Helper()
	old := d.pid()
	d.signal(syscall.SIGUSR2)
	d.pids = append(d.pids, d.waitStarted())
	waitExit(d.t, old, 20*time.Second)
}

func (d *daemon) stop() {
	pid := d.pid()
	if syscall.Kill(pid, syscall.SIGTERM) == nil {
		waitExit(d.t, pid, 20*time.Second)
	}
}

func waitExit(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// Our own child stays a zombie until reaped; a grandchild is reaped by init.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes a RoundRobin configuration with metrics on metricsPort and
// the hand-over on control, as the shipped files have them.
func writeConfig(t *testing.T, path string, metricsPort, listen int, control string, subs []*testenv.Collector) {
	t.Helper()
	var quoted []string
	for _, c := range subs {
		quoted = append(quoted, strconv.Quote(c.Addr()))
	}
	cfg := fmt.Sprintf(`
[metrics]
listen = "127.0.0.1:%d"
[balancer]
control_socket = %q
shutdown_timeout = "5s"
stats_every = "0s"

[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:%d"
mode = "RoundRobin"
subreceivers = [%s]
queue_bytes = 67108864
`, metricsPort, control, listen, strings.Join(quoted, ", "))
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(cfg), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// The exporter streams at ≥ 100 k msg/s while the configuration is reloaded 20
// times (subreceivers added and removed) and the daemon restarted 5 times: its
// connection never drops and the collectors together get every record exactly once.
func TestReloadAndRestartLoseNothing(t *testing.T) {
	dir := t.TempDir()
	var pool []*testenv.Collector
	for range 4 {
		pool = append(pool, testenv.StartCollector(t, "tcp", testenv.CountByID()))
	}
	port, metricsPort := freePort(t), freePort(t)
	control := filepath.Join(dir, "control.sock")
	config := filepath.Join(dir, "balancer.toml")
	writeConfig(t, config, metricsPort, port, control, pool[:2])
	d := startDaemon(t, config)

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer conn.Close()

	// Exporter: messages of 2 records numbered 1, 2, 3…, paced to 100 k msg/s.
	stopSending := make(chan struct{})
	var sendErr error
	var messages int
	var total uint64
	start := time.Now()
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		messages, total, sendErr = export(conn, stopSending)
	}()

	time.Sleep(200 * time.Millisecond)
	for i := range 20 {
		// Rotate through subsets of the pool: always at least one subreceiver.
		subs := []*testenv.Collector{pool[i%4], pool[(i+1)%4]}
		if i%3 == 0 {
			subs = append(subs, pool[(i+2)%4])
		}
		writeConfig(t, config, metricsPort, port, control, subs)
		d.signal(syscall.SIGHUP)
		d.waitLog("configuration reloaded", i+1)
		time.Sleep(50 * time.Millisecond)
	}
	for range 5 {
		d.restart()
		time.Sleep(200 * time.Millisecond)
	}
	close(stopSending)
	<-sendDone
	require.NoError(t, sendErr, "the exporter's connection must never drop")

	elapsed := time.Since(start)
	rate := float64(messages) / elapsed.Seconds()
	assert.GreaterOrEqual(t, rate, 95_000.0, "the exporter must stream at about 100 k msg/s")
	require.Eventually(t, func() bool {
		got := 0
		for _, c := range pool {
			got += c.Stats().Records
		}
		return uint64(got) >= total
	}, 30*time.Second, 20*time.Millisecond, "collectors got fewer records than sent")
	counts := make([]int, total+1)
	for _, c := range pool {
		for id, n := range c.IDCounts() {
			if n > 0 {
				require.LessOrEqual(t, uint64(id), total, "record id never sent")
				counts[id] += int(n)
			}
		}
		assert.Zero(t, c.Stats().Undecoded, "collector %s could not decode some data", c.Addr())
	}
	var missing, duplicated int
	for id := uint64(1); id <= total; id++ {
		switch {
		case counts[id] == 0:
			missing++
		case counts[id] > 1:
			duplicated++
		}
	}
	assert.Zero(t, missing, "records lost")
	assert.Zero(t, duplicated, "records duplicated")
	t.Logf("sent %d messages (%.0f msg/s), %d records, through 20 reloads and 5 restarts", messages, rate, total)
	if testing.Verbose() {
		t.Logf("daemon log:\n%s", d.logText())
	}
}

// export writes messages of two records, numbered from 1, until stop, paced at
// about 100 k msg/s. It returns the messages and records sent.
func export(conn net.Conn, stop <-chan struct{}) (int, uint64, error) {
	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{
		{ID: 1, Length: 8}, {ID: 8, Length: 4}, {ID: 12, Length: 4}, {ID: 7, Length: 2}, {ID: 11, Length: 2},
		{ID: 1002, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI},
	})
	var batch []byte
	messages := 0
	enc := ipfix.NewEncoder(1, 100) // two records per message
	enc.SetOutput(func(m []byte) { batch = append(batch, m...); messages++ })
	enc.AddTemplate(tmpl)
	rec := make([]byte, 0, 64)
	const perTick = 1000 // messages per 10 ms = 100 k msg/s
	id := uint64(0)
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for tick := 1; time.Now().Before(deadline); tick++ {
		select {
		case <-stop:
			return messages, id, nil
		default:
		}
		// Catch up with the schedule rather than drift below the rate.
		if wait := time.Until(start.Add(time.Duration(tick) * 10 * time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		batch = batch[:0]
		for target := messages + perTick; messages < target; {
			id++
			rec = ipfix.AppendUint(rec[:0], id, 8)
			rec = ipfix.AppendUint(rec, 0x0a000000|id&0xffff, 4)
			rec = ipfix.AppendUint(rec, 0x08080808, 4)
			rec = ipfix.AppendUint(rec, 1024+id%60000, 2)
			rec = ipfix.AppendUint(rec, 443, 2)
			rec = ipfix.AppendVarLen(rec, []byte("login"+strconv.FormatUint(id%1000, 10)))
			if err := enc.AppendRecord(256, rec); err != nil {
				return messages, id, err
			}
		}
		enc.Flush()
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(batch); err != nil {
			return messages, id, err
		}
	}
	return messages, id, io.ErrUnexpectedEOF
}
