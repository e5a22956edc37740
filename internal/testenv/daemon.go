package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is a running ipfix-balancer binary and its successors after restarts.
// They all write to one log pipe, from which the current PID is read (the
// "ipfix-balancer starting … pid=N" line of each process).
type Daemon struct {
	t       testing.TB
	mu      sync.Mutex
	log     bytes.Buffer
	pids    []int
	started chan int
}

var daemonStarting = regexp.MustCompile(`ipfix-balancer starting.*pid=(\d+)`)

// StartDaemon runs bin with args and waits until it logs "balancer running". At
// cleanup it stops the current process (SIGTERM) and, if the test failed, logs
// everything the processes wrote.
func StartDaemon(t testing.TB, bin string, args ...string) *Daemon {
	t.Helper()
	d := LaunchDaemon(t, bin, args...)
	d.WaitLog("balancer running", 1)
	return d
}

// LaunchDaemon is StartDaemon without the wait for "balancer running": it
// returns once the process has logged that it starts.
func LaunchDaemon(t testing.TB, bin string, args ...string) *Daemon {
	t.Helper()
	d := &Daemon{t: t, started: make(chan int, 16)}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			d.mu.Unlock()
			if m := daemonStarting.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				d.started <- pid
			}
		}
	}()
	go func() { _ = cmd.Wait() }()
	d.pids = append(d.pids, d.waitStarted())
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("ipfix-balancer log:\n%s", d.Log())
		}
	})
	return d
}

func (d *Daemon) waitStarted() int {
	d.t.Helper()
	select {
	case pid := <-d.started:
		return pid
	case <-time.After(30 * time.Second):
		d.t.Fatalf("ipfix-balancer did not start; log:\n%s", d.Log())
		return 0
	}
}

// Log is everything the processes wrote so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// WaitLog waits until the log holds n lines containing s.
func (d *Daemon) WaitLog(s string, n int) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(d.Log(), s) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("no %d× %q in the log:\n%s", n, s, d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PID is the current process.
func (d *Daemon) PID() int { return d.pids[len(d.pids)-1] }

// Signal sends sig to the current process.
func (d *Daemon) Signal(sig syscall.Signal) {
	d.t.Helper()
	if err := syscall.Kill(d.PID(), sig); err != nil {
		d.t.Fatalf("signal %v to %d: %v", sig, d.PID(), err)
	}
}

// Restart makes the current process start its successor (SIGUSR2) and waits
// until the predecessor has exited and the successor serves.
func (d *Daemon) Restart() {
	d.t.Helper()
	old := d.PID()
	d.Signal(syscall.SIGUSR2)
	d.pids = append(d.pids, d.waitStarted())
	if !WaitGone(old, 60*time.Second) {
		d.t.Fatalf("restart: the old process %d still runs; log:\n%s", old, d.Log())
	}
	if err := syscall.Kill(d.PID(), 0); err != nil {
		d.t.Fatalf("restart: the new process %d is not running: %v", d.PID(), err)
	}
	// Until it serves, its control socket does not listen: the next restart
	// would find no process to take over from (and is refused).
	d.WaitLog("balancer running", len(d.pids))
}

// RestartServing makes the current process start its successor (SIGUSR2) and
// waits only until the successor serves, not until the predecessor has drained:
// the next restart may come while the predecessor still passes on the sessions
// it accepts while stopping. It returns the predecessor's PID (see WaitGone).
func (d *Daemon) RestartServing() int {
	d.t.Helper()
	old := d.PID()
	d.Signal(syscall.SIGUSR2)
	d.pids = append(d.pids, d.waitStarted())
	d.WaitLog("balancer running", len(d.pids))
	return old
}

// Stop sends SIGTERM to the current process and waits until it has exited.
func (d *Daemon) Stop() {
	pid := d.PID()
	if syscall.Kill(pid, syscall.SIGTERM) == nil && !WaitGone(pid, 60*time.Second) {
		d.t.Errorf("ipfix-balancer %d still running 60s after SIGTERM", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// WaitGone waits until pid has exited (a zombie counts: our child is reaped by
// its Wait goroutine, a re-parented successor by init).
func WaitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Scrape reads the /metrics page at addr, which must answer within 10 s.
func Scrape(t testing.TB, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			last = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return string(body)
		}
		last = fmt.Errorf("status %d, %v", resp.StatusCode, err)
	}
	t.Fatalf("/metrics at %s does not answer: %v", addr, last)
	return ""
}

// MetricSum adds up the series of a /metrics page that start with series (a
// name, or a name and its first labels: `name{stream="fullflow"`).
func MetricSum(page, series string) float64 {
	var sum float64
	for _, line := range strings.Split(page, "\n") {
		if !strings.HasPrefix(line, series) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// RSS is the resident set size (VmRSS of /proc/PID/status) of the current
// process, in bytes.
func (d *Daemon) RSS() int64 {
	d.t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.PID()))
	if err != nil {
		d.t.Fatalf("rss: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				d.t.Fatalf("rss: %q: %v", line, err)
			}
			return kb << 10
		}
	}
	d.t.Fatalf("rss: no VmRSS in /proc/%d/status", d.PID())
	return 0
}

// Kill sends SIGKILL to the current process and waits until it is gone: a
// crash, with no chance to close anything.
func (d *Daemon) Kill() {
	d.t.Helper()
	pid := d.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		d.t.Fatalf("kill -9 %d: %v", pid, err)
	}
	if !WaitGone(pid, 30*time.Second) {
		d.t.Fatalf("kill -9 %d: still running", pid)
	}
}
