package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the harness. Every proc is registered with its
// procs so that killAll ends it whatever happens.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *tail
	done   chan struct{}
	err    error // valid after done is closed
}

// procs tracks the children of the harness.
type procs struct {
	mu      sync.Mutex
	list    []*proc
	verbose bool
}

// start runs bin with args; cpus, when set, pins the whole process (every
// thread it will ever start) with taskset(1).
func (ps *procs) start(name, cpus, bin string, args ...string) (*proc, error) {
	if cpus != "" {
		args = append([]string{"-c", cpus, bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, cmd: cmd, stderr: &tail{max: 64 << 10}, done: make(chan struct{})}
	if ps.verbose {
		cmd.Stderr = io.MultiWriter(p.stderr, prefixWriter{name: name, w: os.Stderr})
	} else {
		cmd.Stderr = p.stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = in
	p.stdout = bufio.NewReaderSize(out, 64<<10)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// fail describes a child that failed, with the end of its stderr.
func (p *proc) fail(err error) error {
	msg := strings.TrimSpace(p.stderr.String())
	if msg == "" {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	if len(msg) > 2000 {
		msg = "..." + msg[len(msg)-2000:]
	}
	return fmt.Errorf("%s: %w\n%s", p.name, err, msg)
}

// readJSON reads one JSON line from the child's stdout into v, bounded by timeout.
func (p *proc) readJSON(v any, timeout time.Duration) error {
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		b, err := p.stdout.ReadBytes('\n')
		ch <- line{b, err}
	}()
	select {
	case l := <-ch:
		if l.err != nil {
			return p.fail(fmt.Errorf("reading stdout: %w", l.err))
		}
		return json.Unmarshal(l.b, v)
	case <-time.After(timeout):
		// The reader goroutine ends when the child is killed (EOF).
		return p.fail(errors.New("no answer on stdout in " + timeout.String()))
	}
}

// stop ends the child: close stdin (sinks and relay exit on EOF), then
// SIGTERM (the daemon drains and exits), then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	_ = p.stdin.Close()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// killAll stops every child still running, the most recent first.
func (ps *procs) killAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(3 * time.Second)
	}
}

// run runs a child to completion, bounded by ctx, and returns its stdout.
func (ps *procs) run(ctx context.Context, name, cpus, bin string, args ...string) ([]byte, *proc, error) {
	p, err := ps.start(name, cpus, bin, args...)
	if err != nil {
		return nil, nil, err
	}
	_ = p.stdin.Close()
	outCh := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(p.stdout)
		outCh <- b
	}()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(3 * time.Second)
		return nil, p, p.fail(context.Cause(ctx))
	}
	var out []byte
	select {
	case out = <-outCh:
	case <-time.After(5 * time.Second):
	}
	if p.err != nil {
		return out, p, p.fail(p.err)
	}
	return out, p, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

type prefixWriter struct {
	name string
	w    io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if len(l) > 0 {
			fmt.Fprintf(p.w, "[%s] %s", p.name, l)
		}
	}
	return len(b), nil
}

// procCPU is a process's CPU time so far, from /proc/PID/stat (all threads).
type procCPU struct {
	user, sys time.Duration
}

// clockTick is USER_HZ, the unit of utime and stime: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// readCPU reads the CPU time of process pid, or of its thread tid[0].
func readCPU(pid int, tid ...int) (procCPU, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	if len(tid) > 0 {
		path = fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid[0])
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return procCPU{}, err
	}
	// The command name may contain spaces: fields are counted after its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state(3) ... utime(14) stime(15), so indexes 11 and 12.
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procCPU{user: time.Duration(u) * clockTick, sys: time.Duration(s) * clockTick}, nil
}

// readHWM returns VmHWM (peak resident set) from /proc/PID/status, in bytes.
func readHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// machineCPU is the busy and total time of all CPUs, from /proc/stat.
type machineCPU struct {
	busy, total time.Duration
}

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var m machineCPU
	// user nice system idle iowait irq softirq steal
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		d := time.Duration(n) * clockTick
		m.total += d
		if i != 3 && i != 4 {
			m.busy += d
		}
	}
	return m, nil
}

// idleShare measures the share of the machine's CPU time that is idle over d.
func idleShare(d time.Duration) (float64, error) {
	a, err := readMachineCPU()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b, err := readMachineCPU()
	if err != nil {
		return 0, err
	}
	total := b.total - a.total
	if total <= 0 {
		return 1, nil
	}
	return 1 - float64(b.busy-a.busy)/float64(total), nil
}

// readPinnedCPU adds the CPU time of the threads of pid whose affinity is
// exactly cpus (Cpus_allowed_list): the pinned receiver loop (or relay thread).
// Threads that ended are not counted.
func readPinnedCPU(pid int, cpus string) (procCPU, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return procCPU{}, err
	}
	var total procCPU
	for _, e := range ents {
		st, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread ended
		}
		pinned := false
		for l := range strings.SplitSeq(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				pinned = strings.TrimSpace(v) == cpus
			}
		}
		if !pinned {
			continue
		}
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := readCPU(pid, tid)
		if err != nil {
			continue
		}
		total.user += c.user
		total.sys += c.sys
	}
	return total, nil
}
