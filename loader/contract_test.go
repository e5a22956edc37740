package loader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// buildBinary builds a command of the repository for this test.
func buildBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p, cleanup, err := testenv.Build(name, pkg)
	require.NoError(t, err)
	t.Cleanup(cleanup)
	return p
}

// genRun is an ipfix-gen sending to a receiver; wait returns its summary.
type genRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan error
}

func startGen(t *testing.T, bin string, args ...string) *genRun {
	t.Helper()
	g := &genRun{cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	g.cmd.Stdout, g.cmd.Stderr = &g.stdout, &g.stderr
	require.NoError(t, g.cmd.Start())
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() { _ = g.cmd.Process.Kill() })
	return g
}

// genSummary is the JSON line ipfix-gen prints at the end.
type genSummary struct {
	Messages int64 `json:"messages"`
	Records  int64 `json:"records"`
}

func (g *genRun) wait(t *testing.T, timeout time.Duration) genSummary {
	t.Helper()
	select {
	case err := <-g.done:
		require.NoError(t, err, "ipfix-gen %v: %s", g.cmd.Args, g.stderr.String())
	case <-time.After(timeout):
		t.Fatalf("ipfix-gen %v still running after %v", g.cmd.Args, timeout)
	}
	var s genSummary
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(g.stdout.Bytes()), &s), "summary of %v: %q", g.cmd.Args, g.stdout.String())
	require.NotZero(t, s.Records)
	return s
}

// udpQueued is the rx_queue of the UDP socket bound to addr (host:port on
// 127.0.0.1), from /proc/net/udp: bytes received and not yet read.
func udpQueued(t *testing.T, addr string) int64 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	local := fmt.Sprintf("0100007F:%04X", p)
	b, err := os.ReadFile("/proc/net/udp")
	require.NoError(t, err)
	var q int64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local {
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseInt(rx, 16, 64)
			require.NoError(t, err)
			q += n
			found = true
		}
	}
	require.True(t, found, "no UDP socket on %s", addr)
	return q
}

// countDumpRecords decodes a dump alone and returns its data records and
// the data sets it could not decode.
func countDumpRecords(t *testing.T, path string) (records int64, skipped int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	for {
		msg, err := fr.Next()
		if err == io.EOF {
			return records, skipped
		}
		require.NoError(t, err, path)
		_ = dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			if !r.Template.Options {
				records++
			}
			return nil
		})
		skipped += dec.SkippedSets()
	}
}

// runLoaderOnce runs ipfix-loader -once on the config.
func runLoaderOnce(t *testing.T, config string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, loaderBin, "-config", config, "-once").CombinedOutput()
	require.NoError(t, err, "ipfix-loader -once:\n%s", out)
	require.NotContains(t, string(out), "quarantined")
}

// dumpsUnder lists the files under dir whose base name ends in suffix.
func dumpsUnder(t *testing.T, dir, suffix string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, suffix) {
			out = append(out, p)
		}
		return nil
	}))
	return out
}

// The contract between the two binaries: the real ipfix-balancer records
// on the shipped config/default.toml (only ports, directories and the
// control socket moved; record-count rotation added so every window has
// several dumps; one UDP receiver added, the shipped file has TCP ones only)
// through a restart (SIGUSR2) and a reload (SIGHUP) while ipfix-gen streams
// over TCP and UDP; the real ipfix-loader loads what it wrote into a private
// ClickHouse: the rows of each table are the records sent, and loading again
// adds none (#10: one dump-name grammar, items 2, 3, 4).
func TestContractRecorderLoader(t *testing.T) {
	balancerBin := buildBinary(t, "ipfix-balancer", "../cmd/ipfix-balancer")
	genBin := buildBinary(t, "ipfix-gen", "../cmd/ipfix-gen")
	ch := testenv.StartClickHouse(t)

	const rotate = 3000
	s := testenv.ShippedConfig(t, "config/default.toml",
		testenv.WithClickHouse(ch.URL),
		testenv.WithLines("[receiver.recording]", "rotate_records = "+strconv.Itoa(rotate)))
	require.NotEmpty(t, s.Metrics, "the shipped file turns metrics on")
	require.NotEmpty(t, s.ControlSocket, "the shipped file turns the hand-over on")
	// A UDP receiver: dnsflow of a second DPI.
	udpAddr := func() string {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer pc.Close()
		return pc.LocalAddr().String()
	}()
	f, err := os.OpenFile(s.Path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, "\n[[receiver]]\nstream = \"dnsflow\"\ndpi = 1\nproto = \"udp\"\nlisten = %q\nmode = \"Recording\"\n"+
		"[receiver.recording]\ndir = %q\nrotate_records = %d\n", udpAddr, s.DumpDir, rotate)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	bal := testenv.StartDaemon(t, balancerBin, "-config", s.Path)
	testenv.Scrape(t, s.Metrics)

	// Each generator runs ~15 s; the restart and the reload come while they send.
	type flow struct{ stream, receiver, to string }
	flows := []flow{
		{"fullflow", "fullflow/0", "tcp://" + s.Receivers["fullflow/0"]},
		{"clickstream", "clickstream/0", "tcp://" + s.Receivers["clickstream/0"]},
		{"dnsflow", "dnsflow/0", "tcp://" + s.Receivers["dnsflow/0"]},
		{"dnsflow", "dnsflow/1", "udp://" + udpAddr},
	}
	for _, fl := range flows[:3] {
		require.NotEmpty(t, fl.to[len("tcp://"):], "receiver of %s in the shipped file", fl.stream)
	}
	var gens []*genRun
	for i, fl := range flows {
		gens = append(gens, startGen(t, genBin, "-stream", fl.stream, "-to", fl.to, "-records", "30000",
			"-rate", "2000", "-seed", strconv.Itoa(i+1), "-subscribers", "1000", "-hosts", "1000",
			"-template-every", "1s", "-progress-every", "0"))
	}
	received := func() string {
		t.Helper()
		return regexp.MustCompile(`(?m)^ipfix_balancer_received_messages_total\{stream="fullflow",dpi="0"\} (\d+)`).
			FindStringSubmatch(testenv.Scrape(t, s.Metrics) + "\n")[1]
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			require.True(t, time.Now().Before(deadline), "waiting for %s", what)
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitUntil("traffic", func() bool { n, _ := strconv.Atoi(received()); return n > 100 })

	bal.Restart()
	testenv.Scrape(t, s.Metrics)

	// A reload that changes the recording settings: every recorder is replaced.
	cfg, err := os.ReadFile(s.Path)
	require.NoError(t, err)
	cfg = bytes.ReplaceAll(cfg, []byte("rotate_records = "+strconv.Itoa(rotate)), []byte("rotate_records = "+strconv.Itoa(rotate+500)))
	require.NoError(t, os.WriteFile(s.Path, cfg, 0o600))
	require.NoError(t, syscall.Kill(bal.PID(), syscall.SIGHUP))
	bal.WaitLog("configuration reloaded", 1)
	testenv.Scrape(t, s.Metrics)

	sent := map[string]int64{}
	for i, g := range gens {
		sum := g.wait(t, 3*time.Minute)
		sent[flows[i].receiver] += sum.Records
	}
	// Everything sent is read before the stop: the TCP exporters closed
	// their sessions after their last message (the balancer read up to the
	// end of each), and no datagram waits in the UDP socket.
	sessions := regexp.MustCompile(`(?m)^ipfix_balancer_exporter_sessions\{stream="[a-z]+",dpi="0"\} (\d+)`)
	waitUntil("every message read", func() bool {
		m := sessions.FindAllStringSubmatch(testenv.Scrape(t, s.Metrics), -1)
		require.Len(t, m, 3, "exporter sessions of the TCP receivers")
		for _, v := range m {
			if v[1] != "0" {
				return false
			}
		}
		return udpQueued(t, udpAddr) == 0
	})
	bal.Stop()
	assert.NotContains(t, bal.Log(), "panic")
	assert.Empty(t, dumpsUnder(t, s.DumpDir, dump.PartSuffix), "a stop leaves no .part")

	// Several dumps per stream and DPI, every name of the one grammar.
	closed := dumpsUnder(t, s.DumpDir, dump.Ext)
	perReceiver := map[string]int{}
	inDumps := map[string]int64{} // data records by receiver, decoded here
	for _, p := range closed {
		n, err := dump.Parse(filepath.Base(p))
		require.NoError(t, err)
		require.False(t, n.Legacy(), p)
		perReceiver[dump.Prefix(n.Stream, n.DPI)]++
		recs, skipped := countDumpRecords(t, p)
		assert.Zero(t, skipped, "%s: sets that do not decode alone", p)
		inDumps[n.Stream+"/"+strconv.Itoa(n.DPI)] += recs
	}
	for _, r := range []string{"fullflow_0_", "clickstream_0_", "dnsflow_0_", "dnsflow_1_"} {
		assert.GreaterOrEqual(t, perReceiver[r], 4, "dumps of %s", r)
	}
	t.Logf("dumps: %v; records sent: %v", perReceiver, sent)
	require.Equal(t, sent, inDumps, "records in the dumps = records sent to each receiver")

	runLoaderOnce(t, s.Path)
	// Rows per table and dpi column: those of each receiver.
	rows := func() map[string]int64 {
		out := map[string]int64{}
		for _, table := range []string{"fullflow", "clickstream", "dnsflow"} {
			res := strings.TrimSpace(ch.Query(t, "SELECT dpi, count() FROM ipfix."+table+" GROUP BY dpi"))
			for _, line := range strings.Split(res, "\n") {
				dpi, n, ok := strings.Cut(line, "\t")
				if !ok {
					continue
				}
				v, err := strconv.ParseInt(n, 10, 64)
				require.NoError(t, err)
				out[table+"/"+dpi] = v
			}
		}
		return out
	}
	assert.Equal(t, sent, rows(), "rows per table and dpi = records sent to that receiver")
	assert.Empty(t, dumpsUnder(t, s.DumpDir, dump.Ext+".why"), "nothing quarantined")
	loaded := dumpsUnder(t, s.DumpDir, dump.Ext)
	assert.Len(t, loaded, len(closed), "every dump in loaded/")

	// Loading again adds nothing, nor loading dumps put back by hand.
	runLoaderOnce(t, s.Path)
	for _, p := range loaded {
		dir := filepath.Dir(p)
		require.Equal(t, dump.LoadedDir, filepath.Base(dir))
		require.NoError(t, os.Rename(p, filepath.Join(filepath.Dir(dir), filepath.Base(p))))
	}
	runLoaderOnce(t, s.Path)
	assert.Equal(t, sent, rows(), "a second load adds no row")
}
