package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// scenario is one end-to-end measurement.
type scenario struct {
	Name  string `json:"name"`
	Proto string `json:"proto"` // exporter to balancer: tcp | udp
	Mode  string `json:"mode"`  // RoundRobin | All | relay | relay-all (the minimal relay baselines)
	Size  int    `json:"size"`  // message size of the replayed file
	Main  bool   `json:"main"`  // a target depends on it
	// Burst: instead of a steady stream, the daemon is stopped (SIGSTOP)
	// while the sender fills its socket buffer with one pass of the file,
	// then resumed; the rate is that of draining the buffer. It measures
	// what the receive loop can do when a sender cannot keep it busy.
	Burst bool `json:"burst,omitempty"`
	// Console: the daemon's web console is on and a browser-like client
	// loads its pages every second during the run; otherwise it is off. The
	// pair tcp-rr-1400 / tcp-rr-1400-console shows what the console costs.
	Console bool `json:"console,omitempty"`
}

func (s scenario) relay() bool { return s.Mode == "relay" || s.Mode == "relay-all" }

// copies is how many sinks get each byte (All and relay-all: every sink).
func (s scenario) copies() int {
	if s.Mode == "All" || s.Mode == "relay-all" {
		return sinkCount
	}
	return 1
}

// scenarios, in the order they run within one repetition. Each balancer
// scenario that has a relay counterpart runs right next to it, so that the
// ratio compares runs made under the same conditions.
var scenarios = []scenario{
	{Name: "tcp-rr-1400", Proto: "tcp", Mode: "RoundRobin", Size: 1400, Main: true},
	{Name: "relay-1400", Proto: "tcp", Mode: "relay", Size: 1400, Main: true},
	{Name: "tcp-rr-1400-console", Proto: "tcp", Mode: "RoundRobin", Size: 1400, Console: true},
	{Name: "tcp-rr-16k", Proto: "tcp", Mode: "RoundRobin", Size: 16384},
	{Name: "relay-16k", Proto: "tcp", Mode: "relay", Size: 16384},
	{Name: "tcp-all-1400", Proto: "tcp", Mode: "All", Size: 1400, Main: true},
	{Name: "relay-all-1400", Proto: "tcp", Mode: "relay-all", Size: 1400, Main: true},
	{Name: "tcp-all-16k", Proto: "tcp", Mode: "All", Size: 16384},
	{Name: "udp-rr-1400", Proto: "udp", Mode: "RoundRobin", Size: 1400, Main: true},
	{Name: "udp-burst-1400", Proto: "udp", Mode: "RoundRobin", Size: 1400, Main: true, Burst: true},
}

// burstCycles is the number of fill-and-drain cycles of one burst run.
const burstCycles = 10

// CPU placement on the 2-core machine: the balancer's receiver loop (and the
// relay's thread) on daemonCPU; sinks and sender together on loadCPU, so the
// daemon's CPU is measured alone.
const (
	daemonCPU = "0"
	loadCPU   = "1"
	sinkCount = 2
)

// replayFile is a generated IPFIX file the sender replays.
type replayFile struct {
	Path     string `json:"path"`
	Size     int    `json:"size"`     // -msg-size it was generated with
	Messages int64  `json:"messages"` // all messages
	Data     int64  `json:"data"`     // messages whose first set is a data set
	Bytes    int64  `json:"bytes"`
}

// result is one run of one scenario.
type result struct {
	Scenario string `json:"scenario"`
	Rep      int    `json:"rep"`
	Err      string `json:"error,omitempty"`

	// Sender (ipfix-gen summary).
	SentMessages  int64   `json:"sent_messages"`
	SentBytes     int64   `json:"sent_bytes"`
	SenderSeconds float64 `json:"sender_seconds"`
	SenderRate    float64 `json:"sender_msgs_per_s"`

	// Daemon (its /metrics; for the relay, derived from the sinks).
	InMessages    int64            `json:"in_messages"`
	InBytes       int64            `json:"in_bytes"`
	DaemonSent    int64            `json:"daemon_sent_messages"`
	Drops         int64            `json:"drops"`
	DropsByReason map[string]int64 `json:"drops_by_reason,omitempty"`
	KernelDrops   int64            `json:"udp_kernel_drops"`
	ParseErrors   int64            `json:"parse_errors"`

	// Sinks.
	OutMessages int64   `json:"out_messages"` // data messages (relay: bytes / mean message size)
	OutAll      int64   `json:"out_all_messages"`
	OutBytes    int64   `json:"out_bytes"`
	SinkErrors  int64   `json:"sink_errors"`
	Window      float64 `json:"window_seconds"` // first to last byte at the sinks

	InRate   float64 `json:"in_msgs_per_s"`
	OutRate  float64 `json:"out_msgs_per_s"`
	InGbps   float64 `json:"in_gbit_per_s"`
	OutGbps  float64 `json:"out_gbit_per_s"`
	CPU      float64 `json:"cpu_percent"`      // of one core, over the window
	LoopCPU  float64 `json:"loop_cpu_percent"` // the threads pinned to daemonCPU only
	UserCPU  float64 `json:"user_cpu_percent"`
	SysCPU   float64 `json:"sys_cpu_percent"`
	CPUPerIn float64 `json:"cpu_ns_per_in_message"`
	PeakRSS  int64   `json:"peak_rss_bytes"`
	Complete bool    `json:"complete"` // every message accounted for
	Note     string  `json:"note,omitempty"`
	// ConsolePages is how many console pages were loaded during the run.
	ConsolePages int64 `json:"console_pages,omitempty"`

	// Interference: this machine is shared. IdleBefore is the idle share of
	// all CPUs just before the run; OtherCPU is the CPU time (in % of one
	// core, over the run) of every process that is not part of the run.
	IdleBefore float64 `json:"machine_idle_before"`
	// LoadCPU is the CPU of the sender and the sinks (sharing loadCPU), in %
	// of one core over the window: near 100 means they, not the daemon, set the pace.
	LoadCPU  float64 `json:"load_cpu_percent"`
	OtherCPU float64 `json:"other_cpu_percent"`
}

// harness runs scenarios against the binaries in bin.
type harness struct {
	bin      string // directory with ipfix-balancer and ipfix-gen
	self     string // this executable, for the sink and relay children
	tmp      string
	messages int64   // per 1400 B scenario; 16 KiB scenarios send the same bytes
	seconds  float64 // sender time bound per scenario
	udpRate  float64
	perfDir  string
	verbose  bool
	waitIdle float64 // wait (bounded) until the machine is this idle before each run
	files    map[int]*replayFile
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// generate writes the replay files once: fullflow records in messages of
// each size the scenarios use.
func (h *harness) generate(ctx context.Context) error {
	h.files = map[int]*replayFile{}
	for _, sc := range scenarios {
		if h.files[sc.Size] != nil {
			continue
		}
		path := filepath.Join(h.tmp, fmt.Sprintf("fullflow-%d.ipfix", sc.Size))
		// About 20 k messages of 1400 B (28 MB) or 2.4 k of 16 KiB: small
		// enough to load in milliseconds, large enough to be varied.
		records := 300_000
		if sc.Size > 1400 {
			records = 500_000
		}
		ps := &procs{verbose: h.verbose}
		_, _, err := ps.run(ctx, "ipfix-gen", "", filepath.Join(h.bin, "ipfix-gen"),
			"-stream", "fullflow", "-records", strconv.Itoa(records), "-msg-size", strconv.Itoa(sc.Size),
			"-seed", "1", "-progress-every", "0", "-out", path)
		ps.killAll()
		if err != nil {
			return fmt.Errorf("generating %s: %w", path, err)
		}
		f, err := scanFile(path)
		if err != nil {
			return err
		}
		f.Size = sc.Size
		h.files[sc.Size] = f
		h.logf("generated %s: %d messages (%d data), %d bytes, mean %d B", path, f.Messages, f.Data, f.Bytes, f.Bytes/f.Messages)
	}
	return nil
}

// scanFile counts the messages of an IPFIX file.
func scanFile(path string) (*replayFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &replayFile{Path: path, Bytes: int64(len(b))}
	for off := 0; off < len(b); {
		n, err := ipfix.FrameLength(b[off:])
		if err == nil && n == 0 {
			err = ipfix.ErrShortMessage
		}
		if err != nil {
			return nil, fmt.Errorf("%s at %d: %w", path, off, err)
		}
		msg := b[off : off+n]
		f.Messages++
		it := ipfix.Sets(msg)
		if s, ok := it.Next(); ok && s.ID >= ipfix.MinDataSetID {
			f.Data++
		}
		off += n
	}
	if f.Messages == 0 {
		return nil, fmt.Errorf("%s: no messages", path)
	}
	return f, nil
}

// freePort returns a loopback port nobody listens on right now.
func freePort(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// daemonConfig is the TOML of one balancer scenario.
func daemonConfig(sc scenario, listen, metricsAddr string, sinks []string) string {
	q := make([]string, len(sinks))
	for i, s := range sinks {
		q[i] = strconv.Quote(s)
	}
	return daemonHead("scenario "+sc.Name, metricsAddr, sc.Console, listen) + fmt.Sprintf(`proto = %q
mode = %q
subreceivers = [%s]
subreceiver_proto = "tcp"
`, sc.Proto, sc.Mode, strings.Join(q, ", "))
}

// daemonHead is what every bench daemon's TOML starts with: metrics at
// metricsAddr, quiet logs, no stats lines, no control socket, and one
// fullflow receiver at listen on the daemon's CPU, whose keys the caller
// appends.
func daemonHead(what, metricsAddr string, console bool, listen string) string {
	return fmt.Sprintf(`# Written by bench for %s.
[metrics]
listen = %q

[log]
level = "warn"

[console]
enabled = %t

[balancer]
stats_every = "0s"
shutdown_timeout = "2s"
control_socket = ""

[[receiver]]
stream = "fullflow"
dpi = 0
listen = %q
cpu = %s
`, what, metricsAddr, console, listen, daemonCPU)
}

// sinkStatsOf asks the sink child for its counters.
func sinkStatsOf(p *proc) ([]sinkStats, error) { return sinkCommand(p, "stats") }

// sinkCommand sends "stats" or "mark" to the sink child and reads its answer.
func sinkCommand(p *proc, cmd string) ([]sinkStats, error) {
	if _, err := p.stdin.Write([]byte(cmd + "\n")); err != nil {
		return nil, p.fail(err)
	}
	var st []sinkStats
	if err := p.readJSON(&st, 5*time.Second); err != nil {
		return nil, err
	}
	return st, nil
}

type sinkTotals struct {
	messages, data, bytes, errors int64
	first, last                   int64
}

func totals(st []sinkStats) sinkTotals {
	var t sinkTotals
	for _, s := range st {
		t.messages += s.Messages
		t.data += s.Data
		t.bytes += s.Bytes
		t.errors += s.Errors
		if s.FirstNs != 0 && (t.first == 0 || s.FirstNs < t.first) {
			t.first = s.FirstNs
		}
		t.last = max(t.last, s.LastNs)
	}
	return t
}

// run runs one repetition of one scenario. Every child it starts is killed
// before it returns.
func (h *harness) run(parent context.Context, sc scenario, rep int) (res result) {
	res = result{Scenario: sc.Name, Rep: rep}
	res.IdleBefore = h.waitForIdle(parent)
	if err := h.runErr(parent, sc, rep, &res); err != nil {
		res.Err = err.Error()
	}
	return res
}

func (h *harness) runErr(parent context.Context, sc scenario, rep int, res *result) error {
	file := h.files[sc.Size]
	budget := time.Duration(h.seconds*float64(time.Second)) + 60*time.Second
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()
	ps := &procs{verbose: h.verbose}
	defer ps.killAll()

	sinkArgs := []string{"sink", "-n", strconv.Itoa(sinkCount)}
	if sc.relay() {
		sinkArgs = append(sinkArgs, "-raw")
	}
	sinkP, err := ps.start("sink", loadCPU, h.self, sinkArgs...)
	if err != nil {
		return err
	}
	var hello struct{ Addrs []string }
	if err := sinkP.readJSON(&hello, 10*time.Second); err != nil {
		return err
	}

	// The daemon, or the relay, on its CPU.
	var target *proc
	var addr, metricsURL string
	if sc.relay() {
		target, err = ps.start("relay", "", h.self, relayArgs(daemonCPU, sc.Mode == "relay-all", hello.Addrs)...)
		if err != nil {
			return err
		}
		var r struct{ Addr string }
		if err := target.readJSON(&r, 10*time.Second); err != nil {
			return err
		}
		addr = r.Addr
	} else {
		if addr, err = freePort(sc.Proto); err != nil {
			return err
		}
		maddr, err := freePort("tcp")
		if err != nil {
			return err
		}
		metricsURL = "http://" + maddr + "/metrics"
		cfg := filepath.Join(h.tmp, fmt.Sprintf("%s-%d.toml", sc.Name, rep))
		if err := os.WriteFile(cfg, []byte(daemonConfig(sc, addr, maddr, hello.Addrs)), 0o644); err != nil {
			return err
		}
		target, err = ps.start("ipfix-balancer", "", filepath.Join(h.bin, "ipfix-balancer"), "-config", cfg)
		if err != nil {
			return err
		}
		if err := waitReady(ctx, target, metricsURL, len(hello.Addrs)); err != nil {
			return err
		}
	}

	var perf *proc
	if h.perfDir != "" && rep == 0 {
		out := filepath.Join(h.perfDir, sc.Name+".perf.data")
		perf, err = ps.start("perf", "", "perf", "record", "-g", "-F", "1999", "-p", strconv.Itoa(target.pid()), "-o", out)
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // perf attaches
	}

	if sc.Burst {
		return h.burst(ctx, ps, sinkP, target, metricsURL, addr, file, res)
	}
	cpu0, err := readCPU(target.pid())
	if err != nil {
		return err
	}
	loop0, err := readPinnedCPU(target.pid(), daemonCPU)
	if err != nil {
		return err
	}
	sink0, err := readCPU(sinkP.pid())
	if err != nil {
		return err
	}
	mach0, err := readMachineCPU()
	if err != nil {
		return err
	}
	start := time.Now()
	// The sender: bounded by count (loops) and by time (-duration).
	per := h.messages
	if sc.Size > 1400 {
		per = h.messages * 1400 / int64(sc.Size)
	}
	loops := max(1, (per+file.Messages-1)/file.Messages)
	genArgs := []string{"-replay", file.Path, "-loops", strconv.FormatInt(loops, 10),
		"-to", sc.Proto + "://" + addr, "-progress-every", "0",
		"-duration", (time.Duration(h.seconds * float64(time.Second))).String()}
	if sc.Proto == "udp" && h.udpRate > 0 {
		genArgs = append(genArgs, "-rate", strconv.FormatFloat(h.udpRate, 'f', 0, 64))
	}
	if sc.Console {
		stopBrowsing := browseConsole(ctx, strings.TrimSuffix(metricsURL, "/metrics"), &res.ConsolePages)
		defer stopBrowsing()
	}
	out, genP, err := ps.run(ctx, "ipfix-gen", loadCPU, filepath.Join(h.bin, "ipfix-gen"), genArgs...)
	if err != nil {
		return err
	}
	genCPU := genP.cmd.ProcessState.UserTime() + genP.cmd.ProcessState.SystemTime()
	var gen struct {
		Messages, Bytes int64
		Seconds         float64
	}
	if err := json.Unmarshal(lastLine(out), &gen); err != nil {
		return fmt.Errorf("ipfix-gen summary %q: %w", out, err)
	}
	res.SentMessages, res.SentBytes, res.SenderSeconds = gen.Messages, gen.Bytes, gen.Seconds
	if gen.Seconds > 0 {
		res.SenderRate = float64(gen.Messages) / gen.Seconds
	}
	if gen.Messages < loops*file.Messages {
		res.Note = "sender stopped by -seconds"
	}

	// Wait until the sinks have everything, or they stall.
	st, samples, complete, err := h.drain(ctx, sc, sinkP, target, metricsURL, gen.Messages, gen.Bytes)
	if err != nil {
		return err
	}
	cpu1, err := readCPU(target.pid())
	if err != nil {
		return err
	}
	loop1, err := readPinnedCPU(target.pid(), daemonCPU)
	if err != nil {
		return err
	}
	sink1, err := readCPU(sinkP.pid())
	if err != nil {
		return err
	}
	mach1, err := readMachineCPU()
	if err != nil {
		return err
	}
	if elapsed := time.Since(start); perf == nil && elapsed > 0 {
		ours := cpu1.user + cpu1.sys - cpu0.user - cpu0.sys + sink1.user + sink1.sys - sink0.user - sink0.sys + genCPU
		res.OtherCPU = max(0, 100*float64(mach1.busy-mach0.busy-ours)/float64(elapsed))
	}
	if res.PeakRSS, err = readHWM(target.pid()); err != nil {
		return err
	}
	if perf != nil {
		_ = perf.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-perf.done:
		case <-time.After(30 * time.Second):
		}
	}
	res.Complete = complete
	t := totals(st)
	res.OutAll, res.OutBytes, res.SinkErrors = t.messages, t.bytes, t.errors
	if t.last > t.first {
		res.Window = float64(t.last-t.first) / 1e9
	}
	if sc.relay() {
		mean := float64(file.Bytes) / float64(file.Messages)
		res.InBytes = t.bytes / int64(sc.copies())
		res.InMessages = int64(float64(res.InBytes) / mean)
		res.OutMessages = res.InMessages * int64(sc.copies())
	} else {
		res.InMessages = sum(samples, "ipfix_balancer_received_messages_total")
		res.InBytes = sum(samples, "ipfix_balancer_received_bytes_total")
		res.DaemonSent = sum(samples, "ipfix_balancer_sent_messages_total")
		res.DropsByReason = sumBy(samples, "ipfix_balancer_dropped_messages_total", "reason")
		for r, n := range res.DropsByReason {
			res.Drops += n
			if n == 0 {
				delete(res.DropsByReason, r)
			}
		}
		res.KernelDrops = sum(samples, "ipfix_balancer_udp_socket_dropped_datagrams_total")
		res.ParseErrors = sum(samples, "ipfix_balancer_parse_errors_total")
		res.OutMessages = t.data
	}
	if res.Window > 0 {
		res.InRate = float64(res.InMessages) / res.Window
		res.OutRate = float64(res.OutMessages) / res.Window
		res.InGbps = float64(res.InBytes) * 8 / res.Window / 1e9
		res.OutGbps = float64(res.OutBytes) * 8 / res.Window / 1e9
		// The daemon is idle before the first and after the last message,
		// so its CPU time over the whole run is its CPU time in the window.
		res.UserCPU = 100 * (cpu1.user - cpu0.user).Seconds() / res.Window
		res.SysCPU = 100 * (cpu1.sys - cpu0.sys).Seconds() / res.Window
		res.CPU = res.UserCPU + res.SysCPU
		res.LoopCPU = 100 * (loop1.user + loop1.sys - loop0.user - loop0.sys).Seconds() / res.Window
		res.LoadCPU = 100 * (sink1.user + sink1.sys - sink0.user - sink0.sys + genCPU).Seconds() / res.Window
	}
	if res.InMessages > 0 {
		res.CPUPerIn = float64((cpu1.user + cpu1.sys - cpu0.user - cpu0.sys).Nanoseconds()) / float64(res.InMessages)
	}
	if t.errors > 0 {
		return fmt.Errorf("sinks lost IPFIX framing %d times", t.errors)
	}
	if target.exited() {
		return target.fail(errors.New("exited during the run"))
	}
	return nil
}

// waitReady waits until the daemon serves /metrics with every subreceiver up.
func waitReady(ctx context.Context, p *proc, url string, subs int) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return p.fail(fmt.Errorf("exited at start: %v", p.err))
		}
		ss, err := scrape(ctx, url, time.Second)
		if err == nil {
			if n := countValue(ss, "ipfix_balancer_subreceiver_up", 1); n >= subs {
				return nil
			}
			err = fmt.Errorf("subreceivers up: %d of %d", countValue(ss, "ipfix_balancer_subreceiver_up", 1), subs)
		}
		last = err
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return p.fail(fmt.Errorf("not ready in 15s: %v", last))
}

// drain waits, after the sender has finished, until the sinks hold everything
// the daemon sent (and the daemon received everything over TCP), or until
// nothing has moved for stallAfter. It polls the sinks (on the load CPU) every
// 20 ms and scrapes the daemon only once the sinks are quiet, so as not to
// disturb the measurement.
func (h *harness) drain(ctx context.Context, sc scenario, sinkP, target *proc, metricsURL string, sentMsgs, sentBytes int64) ([]sinkStats, []sample, bool, error) {
	const (
		quiet      = 200 * time.Millisecond
		stallAfter = 3 * time.Second
	)
	var lastBytes int64 = -1
	lastChange := time.Now()
	for {
		st, err := sinkStatsOf(sinkP)
		if err != nil {
			return nil, nil, false, err
		}
		t := totals(st)
		now := time.Now()
		if t.bytes != lastBytes {
			lastBytes, lastChange = t.bytes, now
		}
		idle := now.Sub(lastChange)
		if sc.relay() {
			if t.bytes >= sentBytes*int64(sc.copies()) {
				return st, nil, true, nil
			}
		} else if idle >= quiet {
			ss, err := scrape(ctx, metricsURL, 5*time.Second)
			if err != nil {
				return nil, nil, false, target.fail(err)
			}
			recv := sum(ss, "ipfix_balancer_received_messages_total")
			sent := sum(ss, "ipfix_balancer_sent_messages_total")
			got := t.messages >= sent && (sc.Proto == "udp" || recv >= sentMsgs)
			if got || idle >= stallAfter {
				return st, ss, got, nil
			}
		}
		if idle >= stallAfter {
			return st, nil, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, false, fmt.Errorf("waiting for the sinks: %w", context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastLine(b []byte) []byte {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return []byte(s)
}

// waitForIdle returns the machine's idle share, measured over half a second;
// with -wait-idle it first waits, up to two minutes, for it to reach waitIdle.
func (h *harness) waitForIdle(ctx context.Context) float64 {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		idle, err := idleShare(500 * time.Millisecond)
		if err != nil {
			return 0
		}
		if idle >= h.waitIdle || time.Now().After(deadline) || ctx.Err() != nil {
			return idle
		}
	}
}

// burst runs the fill-and-drain cycles of a Burst scenario (see scenario.Burst).
// Rates are over the drain windows only: from the first to the last byte at
// the sinks after the daemon resumes.
func (h *harness) burst(ctx context.Context, ps *procs, sinkP, target *proc, metricsURL, addr string, file *replayFile, res *result) error {
	var window, cpu, loop time.Duration
	var user, sys time.Duration
	var inMsgs, inBytes, outData, outBytes int64
	for cycle := range burstCycles {
		ss0, err := scrape(ctx, metricsURL, 5*time.Second)
		if err != nil {
			return target.fail(err)
		}
		st0, err := sinkCommand(sinkP, "mark")
		if err != nil {
			return err
		}
		if err := target.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		out, _, err := ps.run(ctx, "ipfix-gen", loadCPU, filepath.Join(h.bin, "ipfix-gen"),
			"-replay", file.Path, "-loops", "1", "-to", "udp://"+addr, "-progress-every", "0")
		var gen struct{ Messages, Bytes int64 }
		if err == nil {
			err = json.Unmarshal(lastLine(out), &gen)
		}
		res.SentMessages += gen.Messages
		res.SentBytes += gen.Bytes
		// The kernel has queued every datagram once the sender has returned
		// (loopback delivers within the send call).
		c0, cerr := readCPU(target.pid())
		l0, lerr := readPinnedCPU(target.pid(), daemonCPU)
		cerr = errors.Join(cerr, lerr)
		if serr := target.cmd.Process.Signal(syscall.SIGCONT); serr != nil {
			return serr
		}
		if err != nil {
			return fmt.Errorf("burst cycle %d: %w", cycle, err)
		}
		if cerr != nil {
			return cerr
		}
		st1, ss1, _, err := h.drain(ctx, scenario{Proto: "udp"}, sinkP, target, metricsURL, 0, 0)
		if err != nil {
			return err
		}
		c1, err := readCPU(target.pid())
		if err != nil {
			return err
		}
		l1, err := readPinnedCPU(target.pid(), daemonCPU)
		if err != nil {
			return err
		}
		loop += l1.user + l1.sys - l0.user - l0.sys
		t0, t1 := totals(st0), totals(st1)
		if t1.first == 0 || t1.last <= t1.first {
			return fmt.Errorf("burst cycle %d: nothing reached the sinks", cycle)
		}
		window += time.Duration(t1.last - t1.first)
		user += c1.user - c0.user
		sys += c1.sys - c0.sys
		cpu += c1.user + c1.sys - c0.user - c0.sys
		inMsgs += sum(ss1, "ipfix_balancer_received_messages_total") - sum(ss0, "ipfix_balancer_received_messages_total")
		inBytes += sum(ss1, "ipfix_balancer_received_bytes_total") - sum(ss0, "ipfix_balancer_received_bytes_total")
		outData += t1.data - t0.data
		outBytes += t1.bytes - t0.bytes
		res.KernelDrops = sum(ss1, "ipfix_balancer_udp_socket_dropped_datagrams_total")
		res.DropsByReason = sumBy(ss1, "ipfix_balancer_dropped_messages_total", "reason")
		res.DaemonSent = sum(ss1, "ipfix_balancer_sent_messages_total")
		res.ParseErrors = sum(ss1, "ipfix_balancer_parse_errors_total")
		res.OutAll = t1.messages
		res.SinkErrors = t1.errors
	}
	for r, n := range res.DropsByReason {
		res.Drops += n
		if n == 0 {
			delete(res.DropsByReason, r)
		}
	}
	res.InMessages, res.InBytes, res.OutMessages, res.OutBytes = inMsgs, inBytes, outData, outBytes
	res.Window = window.Seconds()
	res.Complete = res.OutAll >= res.DaemonSent && res.InMessages+res.KernelDrops >= res.SentMessages
	res.Note = fmt.Sprintf("drain of a pre-filled socket buffer, %d cycles of %d datagrams", burstCycles, file.Messages)
	if res.Window > 0 {
		res.InRate = float64(inMsgs) / res.Window
		res.OutRate = float64(outData) / res.Window
		res.InGbps = float64(inBytes) * 8 / res.Window / 1e9
		res.OutGbps = float64(outBytes) * 8 / res.Window / 1e9
		res.UserCPU = 100 * user.Seconds() / res.Window
		res.SysCPU = 100 * sys.Seconds() / res.Window
		res.CPU = res.UserCPU + res.SysCPU
		res.LoopCPU = 100 * loop.Seconds() / res.Window
	}
	if inMsgs > 0 {
		res.CPUPerIn = float64(cpu.Nanoseconds()) / float64(inMsgs)
	}
	if res.PeakRSS, _ = readHWM(target.pid()); res.SinkErrors > 0 {
		return fmt.Errorf("sinks lost IPFIX framing %d times", res.SinkErrors)
	}
	return nil
}

// browseConsole loads the console's overview, plots and logs pages at base once
// a second, as an operator's open browser tab refreshing does, until the
// returned stop is called (or ctx ends, or ten minutes pass). It counts the
// pages that answered 200 in *pages.
func browseConsole(ctx context.Context, base string, pages *int64) (stop func()) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			for _, p := range []string{"/", "/plots?receiver=fullflow/0", "/logs"} {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
				if err != nil {
					return
				}
				if resp, err := c.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						atomic.AddInt64(pages, 1)
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
