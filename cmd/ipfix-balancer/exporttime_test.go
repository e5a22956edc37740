package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// A capture whose export times are hours old is replayed over one exporter
// session through the real daemon (All mode, metrics and the control socket on)
// to two collectors as strict as IPFIXcol2's TCP input, across a collector
// restart with data queued meanwhile, a reload that adds a collector, two
// restarts by SIGUSR2 and another collector restart. Each template message the
// balancer makes up on the way carries the capture's time: no collector refuses
// a session, and each gets every record sent while it was configured, exactly once.
func TestOldCaptureThroughRestartsAndReloads(t *testing.T) {
	const phases = 6
	capture := writeCapture(t, dpisim.Fullflow, 30000)
	testenv.AgeCapture(t, capture, uint32(time.Now().Add(-6*time.Hour).Unix()), 50)
	msgs, records := readCapture(t, capture)
	parts := make([][]byte, phases) // one byte stream per phase
	wants := make([]map[string]int, phases)
	for i, m := range msgs {
		k := min(i*phases/len(msgs), phases-1)
		parts[k] = append(parts[k], m...)
		if wants[k] == nil {
			wants[k] = map[string]int{}
		}
		for _, fp := range records[i] {
			wants[k][fp]++
		}
	}

	a := testenv.StartCollector(t, "tcp")
	b := testenv.StartCollector(t, "tcp")
	dir := t.TempDir()
	port := freePort(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := filepath.Join(dir, "control.sock")
	config := filepath.Join(dir, "balancer.toml")
	writeConfig(t, config, "All", metricsAddr, port, control, a)
	d := startDaemon(t, config)
	up := func(c *testenv.Collector) float64 {
		return metricIn(t, testenv.Scrape(t, metricsAddr),
			`ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="`+c.Addr()+`"}`)
	}
	testenv.WaitFor(t, 10*time.Second, "a up", func() bool { return up(a) == 1 })

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer conn.Close()
	sent := map[*testenv.Collector]map[string]int{a: {}, b: {}}
	phase := 0
	// send replays the next phase of the capture; every collector configured
	// (to) must get it.
	send := func(to ...*testenv.Collector) {
		t.Helper()
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := conn.Write(parts[phase])
		require.NoError(t, err, "phase %d: the exporter's session must never drop", phase)
		for _, c := range to {
			for fp, n := range wants[phase] {
				sent[c][fp] += n
			}
		}
		phase++
	}
	// arrived waits until every collector has all it was sent.
	arrived := func(what string) {
		t.Helper()
		for c, want := range sent {
			n := 0
			for _, v := range want {
				n += v
			}
			if !c.WaitRecords(n, 20*time.Second) {
				t.Fatalf("%s: collector %s got %d of %d records; refused sessions: %v", what, c.Addr(),
					c.Stats().Records, n, c.Refusals())
			}
		}
	}

	send(a)
	arrived("phase 0")

	a.Stop()
	testenv.WaitFor(t, 10*time.Second, "a down", func() bool { return up(a) == 0 })
	send(a) // queued for a until it is back
	a.Restart()
	arrived("collector restarted")

	writeConfig(t, config, "All", metricsAddr, port, control, a, b)
	d.Signal(syscall.SIGHUP)
	d.WaitLog("configuration reloaded", 1)
	testenv.WaitFor(t, 10*time.Second, "b up", func() bool { return up(b) == 1 })
	send(a, b)
	arrived("collector added by reload")

	for i := range 2 {
		old := d.PID()
		d.Restart()
		require.NotEqual(t, old, d.PID(), "restart %d: the PID must change", i+1)
		send(a, b)
		arrived(fmt.Sprintf("restart %d", i+1))
	}

	b.Stop()
	testenv.WaitFor(t, 10*time.Second, "b down", func() bool { return up(b) == 0 })
	send(a, b)
	b.Restart()
	arrived("collector restarted after the restarts")
	require.Equal(t, phases, phase)

	for c, want := range sent {
		assert.Empty(t, c.Refusals(), "collector %s refused sessions", c.Addr())
		assert.Zero(t, c.Stats().Undecoded, "collector %s could not decode", c.Addr())
		missing, extra := multisetDiff(c.Records(), want)
		assert.Zero(t, missing, "collector %s: records lost", c.Addr())
		assert.Zero(t, extra, "collector %s: records duplicated or never sent", c.Addr())
	}
	assert.GreaterOrEqual(t, b.Stats().Sessions, 3, "b: a session per process and after its restart")
	assert.Equal(t, 2, strings.Count(d.Log(), "exporter session taken over"), "each successor took the exporter's session")
	assert.NotContains(t, d.Log(), "panic")
}

// writeAllConfig writes a daemon configuration: metrics on at metricsAddr, the

// writeCapture writes n records of stream, as the DPI exports them, into an
// IPFIX file (RFC 5655): the templates first, then messages of at most 1400 bytes.
func writeCapture(t *testing.T, stream dpisim.Stream, n int) string {
	t.Helper()
	g, err := dpisim.New(stream, 1, 0.2)
	require.NoError(t, err)
	var file []byte
	enc := ipfix.NewEncoder(1, 1400)
	enc.SetOutput(func(m []byte) { file = append(file, m...) })
	for _, tm := range g.Templates() {
		enc.AddTemplate(tm)
	}
	rec := make([]byte, 0, dpisim.MaxRecordLength)
	for range n {
		id, r := g.Next(rec[:0])
		require.NoError(t, enc.AppendRecord(id, r))
	}
	enc.Flush()
	path := filepath.Join(t.TempDir(), string(stream)+".ipfix")
	require.NoError(t, os.WriteFile(path, file, 0o644))
	return path
}

// readCapture returns the messages of an IPFIX file and the fingerprints of
// the records of each.
func readCapture(t *testing.T, path string) ([][]byte, [][]string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	var msgs [][]byte
	var records [][]string
	for {
		msg, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return msgs, records
		}
		require.NoError(t, err)
		var fps []string
		require.NoError(t, dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			fps = append(fps, testenv.Fingerprint(r))
			return nil
		}))
		msgs = append(msgs, bytes.Clone(msg))
		records = append(records, fps)
	}
}

// multisetDiff counts the records want has more of than got (missing) and
// those got has more of than want (extra).
func multisetDiff(got, want map[string]int) (missing, extra int) {
	for k, n := range want {
		missing += max(0, n-got[k])
	}
	for k, n := range got {
		extra += max(0, n-want[k])
	}
	return missing, extra
}

// metricIn is the value of one series in a /metrics page; 0 when absent.
func metricIn(t *testing.T, page, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " "); ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

// The issue's own setup: a capture hours old replayed by the real ipfix-gen
// (twice over, export time going on) through the daemon in RoundRobin to
// collectors as strict as IPFIXcol2, while a reload adds a collector and a
// SIGUSR2 restart switches processes. ipfix-gen ends cleanly, no collector
// refuses a session, and together they get every record exactly once.
func TestReplayedOldCaptureRoundRobin(t *testing.T) {
	gen, cleanup, err := testenv.Build("ipfix-gen", "../ipfix-gen")
	require.NoError(t, err)
	t.Cleanup(cleanup)
	capture := writeCapture(t, dpisim.Clickstream, 20000)
	testenv.AgeCapture(t, capture, uint32(time.Now().Add(-3*time.Hour).Unix()), 100)
	msgs, records := readCapture(t, capture)
	want := map[string]int{}
	for _, fps := range records {
		for _, fp := range fps {
			want[fp] += 2 // -loops 2
		}
	}

	cs := []*testenv.Collector{testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")}
	dir := t.TempDir()
	port := freePort(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := filepath.Join(dir, "control.sock")
	config := filepath.Join(dir, "balancer.toml")
	writeConfig(t, config, "RoundRobin", metricsAddr, port, control, cs[:2]...)
	d := startDaemon(t, config)

	var out, errOut bytes.Buffer
	// Paced to last about 6 s, so that the reload and the restart fall inside.
	rate := strconv.Itoa(2 * len(msgs) / 6)
	cmd := exec.Command(gen, "-replay", capture, "-loops", "2", "-rate", rate, "-to", fmt.Sprintf("tcp://127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	total := func() int {
		n := 0
		for _, c := range cs {
			n += c.Stats().Records
		}
		return n
	}
	testenv.WaitFor(t, 20*time.Second, "records flowing", func() bool { return total() > 4000 })
	writeConfig(t, config, "RoundRobin", metricsAddr, port, control, cs...)
	d.Signal(syscall.SIGHUP)
	d.WaitLog("configuration reloaded", 1)
	testenv.WaitFor(t, 20*time.Second, "more records", func() bool { return total() > 12000 })
	d.Restart()
	d.WaitLog("exporter session taken over", 1)

	select {
	case err := <-done:
		require.NoError(t, err, "ipfix-gen:\n%s", errOut.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("ipfix-gen did not end:\n%s", errOut.String())
	}
	n := 0
	for _, v := range want {
		n += v
	}
	testenv.WaitFor(t, 20*time.Second, "every record", func() bool { return total() >= n })
	got := map[string]int{}
	for _, c := range cs {
		assert.Empty(t, c.Refusals(), "collector %s refused sessions", c.Addr())
		assert.Zero(t, c.Stats().Undecoded, "collector %s could not decode", c.Addr())
		for k, v := range c.Records() {
			got[k] += v
		}
	}
	assert.Greater(t, cs[2].Stats().Records, 0, "the collector added by reload got its share")
	missing, extra := multisetDiff(got, want)
	assert.Zero(t, missing, "records lost")
	assert.Zero(t, extra, "records duplicated or never sent")
	assert.Contains(t, out.String(), `"records":40000`)
}

// A UDP receiver hands its socket and each exporter's templates to its
// successor on SIGUSR2: the successor sends those templates on at the
// exporter's export time, so the strict collector behind it, which sees a new
// TCP session from the new process, refuses nothing of the capture hours old.
func TestOldCaptureOverUDPThroughRestarts(t *testing.T) {
	capture := writeCapture(t, dpisim.DNSFlow, 6000)
	testenv.AgeCapture(t, capture, uint32(time.Now().Add(-6*time.Hour).Unix()), 20)
	msgs, records := readCapture(t, capture)
	c := testenv.StartCollector(t, "tcp")
	dir := t.TempDir()
	port := freeUDPPort(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	config := filepath.Join(dir, "balancer.toml")
	writeConfig(t, config, "All", metricsAddr, port, filepath.Join(dir, "control.sock"), c)
	b, err := os.ReadFile(config)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(config, bytes.Replace(b, []byte(`mode = "All"`), []byte("mode = \"All\"\nproto = \"udp\""), 1), 0o600))
	d := startDaemon(t, config)

	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer conn.Close()
	want, next := 0, 0
	// send sends the next third of the capture, one message per datagram, in
	// steps the collector confirms (loopback UDP loses nothing unhurried).
	send := func() {
		t.Helper()
		end := min(next+(len(msgs)+2)/3, len(msgs))
		for ; next < end; next++ {
			_, err := conn.Write(msgs[next])
			require.NoError(t, err)
			want += len(records[next])
			if next%20 == 19 || next == end-1 {
				if !c.WaitRecords(want, 20*time.Second) {
					t.Fatalf("message %d: collector got %d of %d records; refused sessions: %v",
						next, c.Stats().Records, want, c.Refusals())
				}
			}
		}
	}
	send()
	for i := range 2 {
		old := d.PID()
		d.Restart()
		require.NotEqual(t, old, d.PID(), "restart %d", i+1)
		send()
	}
	assert.Empty(t, c.Refusals())
	assert.Zero(t, c.Stats().Undecoded)
	assert.Equal(t, want, c.Stats().Records)
	assert.GreaterOrEqual(t, c.Stats().Sessions, 3, "a session per process")
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}
