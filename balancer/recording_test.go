package balancer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// fakeClock is the injected clock of recording tests: rotation without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t testing.TB, rfc3339 string) *fakeClock {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, rfc3339)
	require.NoError(t, err)
	return &fakeClock{t: tm}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingConfig is a TCP receiver on a free loopback port recording into dir.
func recordingConfig(dir, stream string, every time.Duration) config.Receiver {
	return config.Receiver{
		Stream:     stream,
		Listen:     netip.MustParseAddrPort("127.0.0.1:0"),
		Proto:      config.TCP,
		Mode:       config.Recording,
		QueueBytes: 8 << 20,
		MTU:        1500,
		Recording: config.Recorder{
			Dir:         dir,
			RotateEvery: every,
			QueueBytes:  64 << 20,
		},
	}
}

// recording is a running Recording receiver; stop ends it (closing its dump)
// before the end of the test.
type recording struct {
	*balancer.Receiver
	stop func()
}

func startRecording(t testing.TB, cfg config.Receiver, clk *fakeClock) *recording {
	t.Helper()
	// A stop reads a connected exporter for half the timeout (the DPI may
	// still send) before it drains the dump writer: 8 s keeps the drain
	// ample under -race without spending 15 s of each test on the read.
	opts := balancer.Options{ShutdownTimeout: 8 * time.Second}
	if clk != nil {
		opts.Now = clk.Now
	}
	if _, ok := t.(*testing.B); ok {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, stop := runReceiver(t, cfg, opts)
	return &recording{Receiver: r, stop: stop}
}

func (r *recording) metric(t testing.TB, name string, extra ...string) float64 {
	t.Helper()
	labels := `stream="` + streamOf(r) + `",dpi="0"`
	for _, e := range extra {
		labels += "," + e
	}
	return metricValue(t, r.Receiver, name+"{"+labels+"}")
}

func streamOf(r *recording) string { s, _, _ := strings.Cut(r.Name(), "/"); return s }

// waitMetric waits until a series of r reaches want.
func (r *recording) waitMetric(t testing.TB, want float64, name string, extra ...string) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%s %v = %v", name, extra, want), func() bool {
		return r.metric(t, name, extra...) >= want
	})
}

// exporter is one DPI connection kept across windows (the receiver learns the
// templates once, as from a real exporter).
type exporter struct {
	t    testing.TB
	conn net.Conn
}

func dialExporter(t testing.TB, addr net.Addr) *exporter {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &exporter{t: t, conn: conn}
}

func (e *exporter) send(msgs [][]byte) {
	e.t.Helper()
	require.NoError(e.t, e.conn.SetWriteDeadline(time.Now().Add(30*time.Second)))
	_, err := e.conn.Write(bytes.Join(msgs, nil))
	require.NoError(e.t, err)
}

// sendWindow sends msgs and waits until the receiver has taken them (and so
// stamped them with the clock's current window).
func sendWindow(t testing.TB, r *recording, e *exporter, msgs [][]byte, total *int) {
	t.Helper()
	e.send(msgs)
	*total += len(msgs)
	r.waitMetric(t, float64(*total), "ipfix_balancer_received_messages_total")
}

// closedDumps lists the closed dumps of stream (DPI 0) in write order
// (dump.Compare). Every name must parse and print back as it is: the
// recorder and the loader share one grammar.
func closedDumps(t testing.TB, dir, stream string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, stream, dump.Prefix(stream, 0)+"*"+dump.Ext))
	require.NoError(t, err)
	name := func(p string) dump.Name {
		n, err := dump.Parse(filepath.Base(p))
		require.NoError(t, err)
		require.Equal(t, filepath.Base(p), n.String(), "name round trip")
		return n
	}
	slices.SortFunc(paths, func(a, b string) int { return dump.Compare(name(a), name(b)) })
	return paths
}

// dumpWindows returns "<stream>_<dpi>_<window>" of each dump, which must
// carry the identity of the current grammar (open time, instance id).
func dumpWindows(t testing.TB, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		n, err := dump.Parse(filepath.Base(p))
		require.NoError(t, err)
		require.False(t, n.Legacy(), "%s has no identity", p)
		out = append(out, dump.Prefix(n.Stream, n.DPI)+n.Window.Format(dump.WindowLayout))
	}
	return out
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

// readDump returns every message of a closed dump; it must end cleanly.
func readDump(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	var msgs [][]byte
	for {
		msg, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return msgs
		}
		require.NoError(t, err, "dump %s", path)
		msgs = append(msgs, bytes.Clone(msg))
	}
}

// decodeAlone decodes a dump with a fresh template cache, as the loader does:
// every data set must decode. It returns the records' fingerprints.
func decodeAlone(t testing.TB, path string, msgs [][]byte) map[string]int {
	t.Helper()
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	fps := make(map[string]int)
	for i, msg := range msgs {
		err := dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			fps[testenv.Fingerprint(r)]++
			return nil
		})
		require.NoError(t, err, "%s: message %d does not decode alone", filepath.Base(path), i)
	}
	return fps
}

// dataMessages drops the template-only messages a dump starts with.
// readDumps reads files, checks that each decodes alone, and returns their
// data messages in order and the fingerprints of all their records.
func readDumps(t testing.TB, files []string) (data [][]byte, records map[string]int) {
	t.Helper()
	records = make(map[string]int)
	for _, f := range files {
		msgs := readDump(t, f)
		for k, v := range decodeAlone(t, f, msgs) {
			records[k] += v
		}
		data = append(data, dataMessages(msgs)...)
	}
	return data, records
}

func dataMessages(msgs [][]byte) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		it := ipfix.Sets(m)
		for s, ok := it.Next(); ok; s, ok = it.Next() {
			if s.ID >= ipfix.MinDataSetID {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// requireSameMessages byte-compares two message sequences.
func requireSameMessages(t testing.TB, got, want [][]byte, what string) {
	t.Helper()
	require.Equal(t, len(want), len(got), "%s: messages", what)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: message %d differs (%d bytes, want %d)", what, i, len(got[i]), len(want[i]))
		}
	}
}

func countRecords(fps map[string]int) int {
	n := 0
	for _, v := range fps {
		n += v
	}
	return n
}

// Rotation by time (minutes, seconds) and by record count, with an injected
// clock: names carry the UTC window start, windows are aligned to multiples of
// the period (so streams rotate together), empty windows make no file, and
// each file holds exactly what arrived in its window and decodes alone.
func TestRecordingRotation(t *testing.T) {
	type window struct {
		at   string // clock when the part is sent
		name string // its dump, "" = the part is in the previous one
	}
	cases := []struct {
		name    string
		every   time.Duration
		records int64
		windows []window
		end     string // clock at the end: closes the last dump
	}{
		{
			name:  "minutes",
			every: 10 * time.Minute,
			windows: []window{
				{"2026-11-22T10:03:17Z", "20261122T100000Z"},
				{"2026-11-22T10:09:59.999Z", ""},
				{"2026-11-22T10:14:59Z", "20261122T101000Z"},
				// 10:20-10:30 gets nothing: no file.
				{"2026-11-22T10:31:00Z", "20261122T103000Z"},
			},
			end: "2026-11-22T10:40:00Z",
		},
		{
			name:  "seconds",
			every: 5 * time.Second,
			windows: []window{
				{"2026-11-22T10:00:02.5Z", "20261122T100000Z"},
				{"2026-11-22T10:00:05Z", "20261122T100005Z"},
				{"2026-11-22T10:00:09.9Z", ""},
				{"2026-11-22T10:00:15.1Z", "20261122T100015Z"},
			},
			end: "2026-11-22T10:00:20Z",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := newFakeClock(t, tc.windows[0].at)
			r := startRecording(t, recordingConfig(dir, "fullflow", tc.every), clk)
			// A second stream of the same DPI, same period: same window names.
			r2 := startRecording(t, recordingConfig(dir, "clickstream", tc.every), clk)
			e, e2 := dialExporter(t, r.Addr()), dialExporter(t, r2.Addr())

			tr := makeTraffic(t, 4000*len(tc.windows), 1, 1400, 1)
			tr2 := makeTraffic(t, 500*len(tc.windows), 9, 1400, 1_000_000)
			per, per2 := len(tr.messages)/len(tc.windows), len(tr2.messages)/len(tc.windows)
			var want [][][]byte
			var names []string
			sent, sent2 := 0, 0
			for i, w := range tc.windows {
				clk.Set(newFakeClock(t, w.at).t)
				part := tr.messages[i*per : (i+1)*per]
				part2 := tr2.messages[i*per2 : (i+1)*per2]
				if i == len(tc.windows)-1 {
					part, part2 = tr.messages[i*per:], tr2.messages[i*per2:]
				}
				sendWindow(t, r, e, part, &sent)
				sendWindow(t, r2, e2, part2, &sent2)
				if w.name == "" {
					want[len(want)-1] = append(want[len(want)-1], part...)
					continue
				}
				want = append(want, slices.Clone(part))
				names = append(names, w.name)
			}
			clk.Set(newFakeClock(t, tc.end).t)
			r.waitMetric(t, float64(len(names)), "ipfix_balancer_dump_closed_files_total")
			r2.waitMetric(t, float64(len(names)), "ipfix_balancer_dump_closed_files_total")

			for _, s := range []struct {
				stream string
				tr     *traffic
			}{{"fullflow", tr}, {"clickstream", tr2}} {
				files := closedDumps(t, dir, s.stream)
				var wantNames []string
				for _, n := range names {
					wantNames = append(wantNames, s.stream+"_0_"+n)
				}
				require.Equal(t, wantNames, dumpWindows(t, files))
				all := make(map[string]int)
				for i, f := range files {
					msgs := readDump(t, f)
					for k, v := range decodeAlone(t, f, msgs) {
						all[k] += v
					}
					if s.stream == "fullflow" {
						requireSameMessages(t, dataMessages(msgs), want[i], filepath.Base(f))
					}
				}
				assert.Equal(t, s.tr.records, all, "%s: records of all dumps", s.stream)
				parts, _ := filepath.Glob(filepath.Join(dir, s.stream, "*.part"))
				assert.Empty(t, parts)
			}
			assert.Equal(t, float64(tr.count), r.metric(t, "ipfix_balancer_dump_written_records_total"))
			assert.Equal(t, float64(len(tr.messages)), r.metric(t, "ipfix_balancer_dump_written_messages_total"))
			assert.Zero(t, r.metric(t, "ipfix_balancer_dropped_messages_total", `reason="writer_queue_full"`))
		})
	}

	t.Run("records", func(t *testing.T) {
		dir := t.TempDir()
		clk := newFakeClock(t, "2026-11-22T10:03:17Z")
		cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
		cfg.Recording.RotateRecords = 1000
		r := startRecording(t, cfg, clk)
		e := dialExporter(t, r.Addr())
		tr := makeTraffic(t, 5000, 1, 1400, 1)
		sent := 0
		sendWindow(t, r, e, tr.messages, &sent)
		maxPerMsg := 0
		for i := range tr.messages {
			maxPerMsg = max(maxPerMsg, countRecordsIn(t, tr, i))
		}
		r.waitMetric(t, float64(tr.count), "ipfix_balancer_dump_written_records_total")
		r.stop() // closes the last dump
		files := closedDumps(t, dir, "fullflow")
		require.GreaterOrEqual(t, len(files), 5)
		all := make(map[string]int)
		var data [][]byte
		for i, f := range files {
			require.Equal(t, "fullflow_0_20261122T100000Z", dumpWindows(t, files[i:i+1])[0])
			msgs := readDump(t, f)
			fps := decodeAlone(t, f, msgs)
			n := countRecords(fps)
			assert.LessOrEqual(t, n, 1000, "%s: records", filepath.Base(f))
			if i < len(files)-1 {
				assert.Greater(t, n, 1000-maxPerMsg, "%s: rotated too early", filepath.Base(f))
			}
			for k, v := range fps {
				all[k] += v
			}
			data = append(data, dataMessages(msgs)...)
		}
		assert.Equal(t, tr.records, all)
		requireSameMessages(t, data, tr.messages, "all dumps")
	})
}

// A rotation storm at full rate: record-count rotation cuts a file every
// ~35 messages and the clock jumps a window every 64 KiB sent, while one
// exporter sends as fast as TCP goes. Every message sent is in exactly one closed dump: the data
// messages of all dumps, in order, are byte for byte what was sent.
func TestRecordingRotationStorm(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock(t, "2026-11-22T10:00:00Z")
	cfg := recordingConfig(dir, "fullflow", time.Second)
	cfg.Recording.RotateRecords = 1000
	r := startRecording(t, cfg, clk)
	tr := makeTraffic(t, 150_000, 1, 1400, 1)

	// The sender moves the clock to the next window every 64 KiB it writes,
	// without waiting for anything.
	conn, err := net.DialTimeout("tcp", r.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetWriteDeadline(time.Now().Add(time.Minute)))
	start := time.Now()
	windows := 0
	for data := tr.stream(); len(data) > 0; windows++ {
		n, err := conn.Write(data[:min(len(data), 64<<10)])
		require.NoError(t, err)
		data = data[n:]
		clk.Add(time.Second)
	}
	r.waitMetric(t, float64(len(tr.messages)), "ipfix_balancer_received_messages_total")
	elapsed := time.Since(start)
	r.waitMetric(t, float64(len(tr.messages)), "ipfix_balancer_dump_written_messages_total")
	assert.Zero(t, r.metric(t, "ipfix_balancer_dropped_messages_total", `reason="writer_queue_full"`))
	closedBeforeStop := r.metric(t, "ipfix_balancer_dump_closed_files_total")
	r.stop()

	files := closedDumps(t, dir, "fullflow")
	t.Logf("%d messages (%d MB) in %v across %d clock windows: %d dumps", len(tr.messages), len(tr.stream())>>20, elapsed.Round(time.Millisecond), windows, len(files))
	require.Greater(t, len(files), 100, "no storm")
	assert.GreaterOrEqual(t, float64(len(files)), closedBeforeStop)
	data, all := readDumps(t, files)
	requireSameMessages(t, data, tr.messages, "data messages of all dumps vs sent")
	assert.Equal(t, tr.records, all)
	parts, _ := filepath.Glob(filepath.Join(dir, "fullflow", "*.part"))
	assert.Empty(t, parts)
}

const crashChildEnv = "IPFIX_BALANCER_RECORDING_CHILD_DIR"

// TestRecordingCrashChild is the process TestRecordingCrashRecovery kills: a
// recording receiver that writes its address to <dir>/addr. It does nothing
// when run on its own.
func TestRecordingCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		return
	}
	r, err := balancer.New(recordingConfig(dir, "fullflow", 10*time.Minute), balancer.Options{})
	require.NoError(t, err)
	go func() { _ = r.Run(context.Background()) }()
	select {
	case <-r.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("child receiver not ready")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "addr.tmp"), []byte(r.Addr().String()), 0o644))
	require.NoError(t, os.Rename(filepath.Join(dir, "addr.tmp"), filepath.Join(dir, "addr")))
	time.Sleep(60 * time.Second) // killed long before
	t.Error("child not killed within 60s")
}

// SIGKILL of a recording process mid-file, then a restart: the .part is
// recovered under its final name with every complete message it held.
func TestRecordingCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecordingCrashChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var childLog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &childLog, &childLog
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})
	var addr []byte
	testenv.WaitFor(t, 60*time.Second, "child address", func() bool {
		addr, _ = os.ReadFile(filepath.Join(dir, "addr"))
		return len(addr) > 0
	})

	tr := makeTraffic(t, 250_000, 1, 1400, 1)
	conn, err := net.DialTimeout("tcp", string(addr), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_ = conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
		data := tr.stream()
		for len(data) > 0 {
			n, err := conn.Write(data[:min(len(data), 64<<10)])
			if err != nil {
				return
			}
			data = data[n:]
		}
	}()
	var part string
	testenv.WaitFor(t, 60*time.Second, "a .part of 4 MiB", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "fullflow", "*.ipfix.part"))
		if len(parts) != 1 {
			return false
		}
		part = parts[0]
		st, err := os.Stat(part)
		return err == nil && st.Size() >= 4<<20
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("child did not die")
	}
	_ = conn.Close()
	<-sent

	before, err := os.ReadFile(part)
	require.NoError(t, err)
	var complete int64
	var held int
	fr := ipfix.NewFileReader(bytes.NewReader(before))
	for {
		msg, err := fr.Next()
		if err != nil {
			break
		}
		complete = fr.Offset() + int64(len(msg))
		held++
	}
	t.Logf("killed with %d bytes in %s: %d complete messages, %d torn bytes", len(before), filepath.Base(part), held, int64(len(before))-complete)
	require.Positive(t, held)

	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), nil)
	r.waitMetric(t, 1, "ipfix_balancer_dump_recovered_files_total")
	final := strings.TrimSuffix(part, ".part")
	got, err := os.ReadFile(final)
	require.NoError(t, err, "recovered dump")
	require.True(t, bytes.Equal(before[:complete], got), "recovered dump must be the complete messages of the .part")
	_, err = os.Stat(part)
	require.ErrorIs(t, err, os.ErrNotExist)
	msgs := readDump(t, final)
	decodeAlone(t, final, msgs)
	data := dataMessages(msgs)
	requireSameMessages(t, data, tr.messages[:len(data)], "recovered dump vs sent")
	if t.Failed() {
		t.Logf("child output:\n%s", childLog.String())
	}
}

// Leftover .part files: torn tails and zero-filled tails are cut, a .part
// without a complete data message is removed, another DPI's and a locked one
// (a live process writes it) are left alone.
func TestRecordingRecoverTornPart(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "fullflow")
	require.NoError(t, os.MkdirAll(sd, 0o755))
	tr := makeTraffic(t, 3000, 1, 1400, 1)
	whole := bytes.Join(tr.messages[:10], nil)
	write := func(name string, b []byte) string {
		p := filepath.Join(sd, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	write("fullflow_0_20261122T100000Z.ipfix.part", append(slices.Clone(whole), tr.messages[10][:700]...))
	write("fullflow_0_20261122T101000Z.ipfix.part", append(slices.Clone(whole), make([]byte, 4096)...))
	write("fullflow_0_20261122T102000Z.ipfix.part", tr.messages[0][:10])
	other := write("fullflow_1_20261122T100000Z.ipfix.part", whole)
	locked := write("fullflow_0_20261122T095000Z.ipfix.part", whole) // recovered first
	lf, err := os.Open(locked)
	require.NoError(t, err)
	defer lf.Close()
	require.NoError(t, unix.Flock(int(lf.Fd()), unix.LOCK_EX))

	clk := newFakeClock(t, "2026-11-22T11:00:00Z")
	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), clk)
	r.waitMetric(t, 2, "ipfix_balancer_dump_recovered_files_total")
	// Recovery goes in name order: the empty one is the last.
	testenv.WaitFor(t, 10*time.Second, "empty .part removed", func() bool {
		_, err := os.Stat(filepath.Join(sd, "fullflow_0_20261122T102000Z.ipfix.part"))
		return errors.Is(err, os.ErrNotExist)
	})
	assert.Zero(t, r.metric(t, "ipfix_balancer_dump_errors_total", `kind="recover"`))
	for _, name := range []string{"fullflow_0_20261122T100000Z.ipfix", "fullflow_0_20261122T101000Z.ipfix"} {
		got, err := os.ReadFile(filepath.Join(sd, name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(whole, got), "%s: must hold the 10 complete messages", name)
		decodeAlone(t, name, readDump(t, filepath.Join(sd, name)))
	}
	for _, gone := range []string{"fullflow_0_20261122T102000Z.ipfix.part", "fullflow_0_20261122T102000Z.ipfix"} {
		_, err := os.Stat(filepath.Join(sd, gone))
		assert.ErrorIs(t, err, os.ErrNotExist, gone)
	}
	for _, kept := range []string{other, locked} {
		_, err := os.Stat(kept)
		assert.NoError(t, err, "%s must be left alone", filepath.Base(kept))
	}
}

// flakyFile fails writes like a full disk while fail is set: half the buffer
// goes to the file, then ENOSPC.
type flakyFile struct {
	*os.File
	fail *atomic.Bool
}

func (f flakyFile) Write(p []byte) (int, error) {
	if f.fail.Load() {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

// Disk full, by an injected write error: no crash, the dump is cut back to its
// last complete message and closed, what cannot be written is dropped and
// counted, and recording resumes by itself.
func TestRecordingDiskFullInjected(t *testing.T) {
	var fail atomic.Bool
	balancer.SetDumpFileHook(t, func(f *os.File) balancer.DumpFile { return flakyFile{File: f, fail: &fail} })
	dir := t.TempDir()
	clk := newFakeClock(t, "2026-11-22T10:00:00Z")
	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), clk)
	e := dialExporter(t, r.Addr())
	tr := makeTraffic(t, 9000, 1, 1400, 1)
	third := len(tr.messages) / 3
	a, b, c := tr.messages[:third], tr.messages[third:2*third], tr.messages[2*third:]

	sent := 0
	sendWindow(t, r, e, a, &sent)
	r.waitMetric(t, float64(len(a)), "ipfix_balancer_dump_written_messages_total")

	fail.Store(true)
	sendWindow(t, r, e, b, &sent)
	r.waitMetric(t, float64(len(b)), "ipfix_balancer_dropped_messages_total", `reason="write_error"`)
	r.waitMetric(t, 1, "ipfix_balancer_dump_closed_files_total")
	assert.Equal(t, float64(len(b)), r.metric(t, "ipfix_balancer_dropped_messages_total", `reason="write_error"`))
	assert.Equal(t, float64(1), r.metric(t, "ipfix_balancer_dump_errors_total", `kind="write"`))
	assert.Zero(t, r.metric(t, "ipfix_balancer_dump_up"))

	fail.Store(false)
	clk.Add(2 * time.Second) // past the retry delay, same window
	sendWindow(t, r, e, c, &sent)
	r.waitMetric(t, float64(len(a)+len(c)), "ipfix_balancer_dump_written_messages_total")
	assert.Equal(t, float64(1), r.metric(t, "ipfix_balancer_dump_up"))
	r.stop()

	files := closedDumps(t, dir, "fullflow")
	require.Equal(t, []string{"fullflow_0_20261122T100000Z", "fullflow_0_20261122T100000Z"}, dumpWindows(t, files))
	for i, want := range [][][]byte{a, c} {
		msgs := readDump(t, files[i])
		decodeAlone(t, files[i], msgs)
		requireSameMessages(t, dataMessages(msgs), want, filepath.Base(files[i]))
	}
}

// Disk full for real: a 2 MiB tmpfs mounted by the test. Needs root (mount);
// TestRecordingDiskFullInjected covers the same path everywhere.
func TestRecordingDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; TestRecordingDiskFullInjected covers disk full")
	}
	dir := filepath.Join(t.TempDir(), "dump")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount tmpfs: %s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	clk := newFakeClock(t, "2026-11-22T10:00:00Z")
	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), clk)
	e := dialExporter(t, r.Addr())
	tr := makeTraffic(t, 130_000, 1, 1400, 1) // ~4.5 MB: twice the file system
	sent := 0
	head := len(tr.messages) * 9 / 10
	sendWindow(t, r, e, tr.messages[:head], &sent)
	r.waitMetric(t, 1, "ipfix_balancer_dump_errors_total", `kind="write"`)
	r.waitMetric(t, 1, "ipfix_balancer_dump_closed_files_total")
	testenv.WaitFor(t, 20*time.Second, "all handled", func() bool {
		return r.metric(t, "ipfix_balancer_dump_written_messages_total")+
			r.metric(t, "ipfix_balancer_dropped_messages_total", `reason="write_error"`) == float64(head)
	})
	assert.Zero(t, r.metric(t, "ipfix_balancer_dump_up"))
	written := r.metric(t, "ipfix_balancer_dump_written_messages_total")
	t.Logf("disk full after %v messages; %v dropped", written, r.metric(t, "ipfix_balancer_dropped_messages_total", `reason="write_error"`))

	// The full dump was closed with complete messages only; the loader takes it
	// away, which frees the space.
	files := closedDumps(t, dir, "fullflow")
	require.Len(t, files, 1)
	msgs := readDump(t, files[0])
	decodeAlone(t, files[0], msgs)
	first := dataMessages(msgs)
	requireSameMessages(t, first, tr.messages[:len(first)], "full dump")
	require.NoError(t, os.Remove(files[0]))

	clk.Add(2 * time.Second)
	rest := tr.messages[head:]
	sendWindow(t, r, e, rest, &sent)
	r.waitMetric(t, written+float64(len(rest)), "ipfix_balancer_dump_written_messages_total")
	assert.Equal(t, float64(1), r.metric(t, "ipfix_balancer_dump_up"))
	r.stop()
	files = closedDumps(t, dir, "fullflow")
	require.Len(t, files, 1)
	assert.Equal(t, []string{"fullflow_0_20261122T100000Z"}, dumpWindows(t, files))
	msgs = readDump(t, files[0])
	decodeAlone(t, files[0], msgs)
	requireSameMessages(t, dataMessages(msgs), rest, "dump after the disk had room again")
	parts, _ := filepath.Glob(filepath.Join(dir, "fullflow", "*.part"))
	assert.Empty(t, parts)
}

// gatedFile blocks writes until gate closes: a disk that stopped answering.
type gatedFile struct {
	*os.File
	gate chan struct{}
}

func (f gatedFile) Write(p []byte) (int, error) {
	<-f.gate
	return f.File.Write(p)
}

// A stalled disk never stalls the receiver: the writer queue fills up to its
// mark, the rest is dropped and counted, and the writer catches up after.
func TestRecordingWriterQueueFull(t *testing.T) {
	gate := make(chan struct{})
	balancer.SetDumpFileHook(t, func(f *os.File) balancer.DumpFile { return gatedFile{File: f, gate: gate} })
	dir := t.TempDir()
	cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
	cfg.Recording.QueueBytes = 512 << 10
	clk := newFakeClock(t, "2026-11-22T10:00:00Z")
	r := startRecording(t, cfg, clk)
	e := dialExporter(t, r.Addr())
	tr := makeTraffic(t, 50_000, 1, 1400, 1) // ~2 MB
	sent := 0
	sendWindow(t, r, e, tr.messages, &sent) // the loop took everything
	dropped := r.metric(t, "ipfix_balancer_dropped_messages_total", `reason="writer_queue_full"`)
	assert.Positive(t, dropped)
	assert.LessOrEqual(t, r.metric(t, "ipfix_balancer_dump_queue_bytes"), float64(512<<10))
	close(gate)
	testenv.WaitFor(t, 20*time.Second, "writer caught up", func() bool {
		return r.metric(t, "ipfix_balancer_dump_written_messages_total")+dropped == float64(len(tr.messages))
	})
	r.stop()
	files := closedDumps(t, dir, "fullflow")
	require.Len(t, files, 1)
	msgs := readDump(t, files[0])
	decodeAlone(t, files[0], msgs)
	data := dataMessages(msgs)
	assert.Equal(t, len(tr.messages)-int(dropped), len(data))
	requireSameMessages(t, data[:1], tr.messages[:1], "first message (templates) kept")
}

// Re-export: every record recorded also reaches each export target, with the
// templates it needs (template priming and bounded queues as in All mode).
func TestRecordingReexport(t *testing.T) {
	a, b, u := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "udp")
	dir := t.TempDir()
	cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
	cfg.Recording.Export = []config.Subreceiver{
		{Addr: a.Addr(), Proto: config.TCP}, {Addr: b.Addr(), Proto: config.TCP}, {Addr: u.Addr(), Proto: config.UDP},
	}
	r := startRecording(t, cfg, nil)
	for _, c := range []*testenv.Collector{a, b} {
		up := `subreceiver="` + c.Addr() + `"`
		testenv.WaitFor(t, 5*time.Second, "export target up", func() bool { return r.metric(t, "ipfix_balancer_subreceiver_up", up) == 1 })
	}
	tr := makeTraffic(t, 20_000, 1, 1400, 1)
	sendTCP(t, r.Addr(), tr.stream(), 3001)
	for _, c := range []*testenv.Collector{a, b, u} {
		require.True(t, c.WaitRecords(tr.count, 20*time.Second), "collector %s got %d of %d records", c.Addr(), c.Stats().Records, tr.count)
		assert.Equal(t, tr.records, c.Records())
		assert.Zero(t, c.Stats().Undecoded)
		assert.Zero(t, c.Stats().SequenceGaps)
	}
	r.waitMetric(t, float64(tr.count), "ipfix_balancer_dump_written_records_total")
	r.stop()
	all := make(map[string]int)
	for _, f := range closedDumps(t, dir, "fullflow") {
		for k, v := range decodeAlone(t, f, readDump(t, f)) {
			all[k] += v
		}
	}
	assert.Equal(t, tr.records, all)
}

// A UDP receiver records the same way: every datagram's message in the dump,
// in order, the dump decodable alone.
func TestRecordingUDPReceiver(t *testing.T) {
	dir := t.TempDir()
	cfg := recordingConfig(dir, "dnsflow", 10*time.Minute)
	cfg.Proto = config.UDP
	cfg.UDPReadBuffer = 8 << 20
	r := startRecording(t, cfg, nil)
	tr := makeTraffic(t, 30_000, 3, 1400, 1)
	conn, err := net.Dial("udp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	for i, m := range tr.messages {
		_, err := conn.Write(m)
		require.NoError(t, err)
		if i%100 == 99 { // stay within the socket buffer on a busy machine
			r.waitMetric(t, float64(i+1), "ipfix_balancer_received_messages_total")
		}
	}
	r.waitMetric(t, float64(len(tr.messages)), "ipfix_balancer_dump_written_messages_total")
	r.stop()
	files := closedDumps(t, dir, "dnsflow")
	require.Len(t, files, 1)
	msgs := readDump(t, files[0])
	assert.Equal(t, tr.records, decodeAlone(t, files[0], msgs))
	requireSameMessages(t, dataMessages(msgs), tr.messages, "udp dump")
}

// An independent reader: tshark reads a closed dump, one IPFIX message per
// frame, none malformed.
func TestRecordingTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	require.NoError(t, err, "tshark is needed (make deps installs it)")
	dir := t.TempDir()
	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), nil)
	tr := makeTraffic(t, 20_000, 1, 1400, 1)
	sendTCP(t, r.Addr(), tr.stream(), 1<<16)
	r.waitMetric(t, float64(tr.count), "ipfix_balancer_dump_written_records_total")
	r.stop()
	files := closedDumps(t, dir, "fullflow")
	require.NotEmpty(t, files)
	for _, f := range files {
		msgs := readDump(t, f)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, tshark, "-r", f, "-T", "fields", "-e", "frame.protocols", "-e", "_ws.malformed").Output()
		cancel()
		require.NoError(t, err, "tshark -r %s", f)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		assert.Equal(t, len(msgs), len(lines), "tshark frames vs our messages in %s", filepath.Base(f))
		for i, l := range lines {
			protos, malformed, _ := strings.Cut(l, "\t")
			assert.Contains(t, protos, "cflow", "frame %d", i+1)
			assert.Empty(t, malformed, "frame %d malformed", i+1)
		}
	}
}

// Retention: loaded dumps go first, then the oldest; max_age by close time;
// other DPIs' dumps and unrelated files are not touched.
func TestRecordingRetention(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "fullflow")
	require.NoError(t, os.MkdirAll(filepath.Join(sd, "loaded"), 0o755))
	clk := newFakeClock(t, "2026-11-22T10:00:00Z")
	put := func(rel string, size int, age time.Duration) string {
		p := filepath.Join(sd, rel)
		require.NoError(t, os.WriteFile(p, make([]byte, size), 0o644))
		mt := clk.Now().Add(-age)
		require.NoError(t, os.Chtimes(p, mt, mt))
		return p
	}
	ancient := put("fullflow_0_20261120T000000Z.ipfix", 10_000, 48*time.Hour)
	loaded := put("loaded/fullflow_0_20261122T080000Z.ipfix", 100_000, 2*time.Hour)
	older := put("fullflow_0_20261122T081000Z.ipfix", 100_000, 110*time.Minute)
	newer := put("fullflow_0_20261122T082000Z_1.ipfix", 100_000, 100*time.Minute)
	otherDPI := put("fullflow_1_20261120T000000Z.ipfix", 100_000, 48*time.Hour)
	unrelated := put("notes.txt", 100_000, 48*time.Hour)

	cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
	cfg.Recording.MaxAge = 24 * time.Hour
	cfg.Recording.MaxBytes = 250_000
	r := startRecording(t, cfg, clk)
	r.waitMetric(t, 1, "ipfix_balancer_dump_removed_files_total", `reason="max_age"`)
	r.waitMetric(t, 1, "ipfix_balancer_dump_removed_files_total", `reason="max_bytes"`)
	gone := func(p string) bool { _, err := os.Stat(p); return errors.Is(err, os.ErrNotExist) }
	assert.True(t, gone(ancient), "older than max_age")
	assert.True(t, gone(loaded), "loaded dumps go first")
	assert.False(t, gone(older))
	assert.False(t, gone(newer))

	// A new dump pushes the total over again: now the oldest unloaded goes.
	tr := makeTraffic(t, 3000, 1, 1400, 1)
	sendTCP(t, r.Addr(), tr.stream(), 1<<16)
	r.waitMetric(t, float64(tr.count), "ipfix_balancer_dump_written_records_total")
	clk.Add(10 * time.Minute) // closes it
	r.waitMetric(t, 1, "ipfix_balancer_dump_closed_files_total")
	r.waitMetric(t, 2, "ipfix_balancer_dump_removed_files_total", `reason="max_bytes"`)
	assert.True(t, gone(older), "oldest first")
	assert.False(t, gone(newer))
	assert.Len(t, closedDumps(t, dir, "fullflow"), 2)
	assert.False(t, gone(otherDPI))
	assert.False(t, gone(unrelated))
}

// A reload that changes the recording settings swaps the dump writer: the old
// one writes what it holds and closes its dump, the new one takes what comes
// after; every message is in exactly one dump and the counters go on.
func TestRecordingReload(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock(t, "2026-11-22T10:00:00Z")
	cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
	r := startRecording(t, cfg, clk)
	e := dialExporter(t, r.Addr())
	tr := makeTraffic(t, 20_000, 1, 1400, 1)
	half := len(tr.messages) / 2
	sent := 0
	sendWindow(t, r, e, tr.messages[:half], &sent)

	c := testenv.StartCollector(t, "tcp")
	cfg.Recording.RotateEvery = 5 * time.Minute
	cfg.Recording.RotateRecords = 4000
	cfg.Recording.Export = []config.Subreceiver{{Addr: c.Addr(), Proto: config.TCP}}
	require.NoError(t, r.Reconfigure(cfg))
	sendWindow(t, r, e, tr.messages[half:], &sent)
	r.waitMetric(t, float64(len(tr.messages)), "ipfix_balancer_dump_written_messages_total")
	require.True(t, c.WaitRecords(tr.count-recordsIn(t, tr, 0, half), 10*time.Second))
	assert.Equal(t, float64(1), r.metric(t, "ipfix_balancer_dump_up"))
	r.stop()

	data, all := readDumps(t, closedDumps(t, dir, "fullflow"))
	requireSameMessages(t, data, tr.messages, "dumps across the reload")
	assert.Equal(t, tr.records, all)
	assert.Zero(t, c.Stats().Undecoded, "the new export target gets the templates first")
}

// recordsIn counts the data records of tr.messages[from:to].
func recordsIn(t testing.TB, tr *traffic, from, to int) int {
	t.Helper()
	n := 0
	for i := from; i < to; i++ {
		n += countRecordsIn(t, tr, i)
	}
	return n
}

// The dump series, by their exact names (STYLE.md §7).
func TestRecordingMetrics(t *testing.T) {
	r := startRecording(t, recordingConfig(t.TempDir(), "dnsflow", 10*time.Minute), nil)
	var b bytes.Buffer
	r.Metrics().WritePrometheus(&b)
	for _, series := range []string{
		`ipfix_balancer_dump_written_messages_total{stream="dnsflow",dpi="0"} 0`,
		`ipfix_balancer_dump_written_records_total{stream="dnsflow",dpi="0"} 0`,
		`ipfix_balancer_dump_written_bytes_total{stream="dnsflow",dpi="0"} 0`,
		`ipfix_balancer_dump_closed_files_total{stream="dnsflow",dpi="0"} 0`,
		`ipfix_balancer_dump_recovered_files_total{stream="dnsflow",dpi="0"} 0`,
		`ipfix_balancer_dump_removed_files_total{stream="dnsflow",dpi="0",reason="max_bytes"} 0`,
		`ipfix_balancer_dump_removed_files_total{stream="dnsflow",dpi="0",reason="max_age"} 0`,
		`ipfix_balancer_dump_errors_total{stream="dnsflow",dpi="0",kind="write"} 0`,
		`ipfix_balancer_dump_queue_bytes{stream="dnsflow",dpi="0"} 0`,
		`ipfix_balancer_dump_up{stream="dnsflow",dpi="0"} 1`,
		`ipfix_balancer_dropped_messages_total{stream="dnsflow",dpi="0",reason="writer_queue_full"} 0`,
		`ipfix_balancer_dropped_messages_total{stream="dnsflow",dpi="0",reason="write_error"} 0`,
	} {
		assert.Contains(t, b.String(), series+"\n")
	}
}

// BenchmarkRecording measures the recorder. "writer" feeds it as the event
// loop does (batches of one 256 KiB read) and waits while more than 1 MiB is
// queued, so it measures what the disk writer sustains; "tcp" sends over
// loopback as fast as it goes through a whole receiver (drops show where the
// writer saturates). Files go to t.TempDir, or $IPFIX_BENCH_DIR (a tmpfs
// measures the page-cache path without the disk's dirty-page throttling).
// cpu-ns/msg is the process's CPU time (all threads) per message, so
// 1e9/cpu-ns is what one core sustains whatever else the machine runs;
// loop-cpu-ns/msg is the event loop's share (the copy into the writer queue),
// the rest is the writer's and the kernel's page-cache copy.
func BenchmarkRecording(b *testing.B) {
	for _, size := range []int{1400, 16 << 10} {
		tr := makeTraffic(b, 200_000, 1, size, 1)
		records := make([]int, len(tr.messages))
		for i := range tr.messages {
			records[i] = countRecordsIn(b, tr, i)
		}
		kinds := make([][2]bool, len(tr.messages))
		for i, m := range tr.messages {
			kinds[i] = [2]bool{balancer.HasDataSet(m), balancer.HasTemplateSet(m)}
		}
		b.Run(fmt.Sprintf("writer/%dB", size), func(b *testing.B) {
			cfg := recordingConfig(benchDir(b), "fullflow", 10*time.Minute)
			rec, err := balancer.NewTestRecorder(cfg, balancer.Options{ShutdownTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
			require.NoError(b, err)
			rec.Start()
			perRead := max(1, (256<<10)/size)
			b.ResetTimer()
			b.SetBytes(int64(len(tr.messages[1])))
			b.ReportAllocs()
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			start := time.Now()
			nrec := 0
			// Cycle over 1 MiB of messages: an event loop copies from its read
			// buffer, which the kernel just wrote (in cache), not from 280 MB.
			hot, hotBytes := 1, 0
			for hot < len(tr.messages) && hotBytes < 1<<20 {
				hotBytes += len(tr.messages[hot])
				hot++
			}
			i := 1 // message 0 carries the templates: once
			rec.Send(tr.messages[0], records[0], kinds[0][0], kinds[0][1])
			// This goroutine plays the event loop: its thread's CPU time is the
			// loop's share (waiting below sleeps, costing none).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			loop0 := threadCPU(b)
			for n := 0; n < b.N; n++ {
				if n%perRead == 0 {
					rec.Flush()
					// A source that waits for the writer (what it sustains),
					// keeping the queue short as it is while the writer keeps up.
					for rec.Pending() > 1<<20 {
						time.Sleep(100 * time.Microsecond)
					}
				}
				rec.Send(tr.messages[i], records[i], kinds[i][0], kinds[i][1])
				nrec += records[i]
				if i++; i == hot {
					i = 1
				}
			}
			rec.Flush()
			loop := threadCPU(b) - loop0
			for rec.Pending() > 0 {
				time.Sleep(100 * time.Microsecond)
			}
			el := time.Since(start)
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			rec.Stop()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(nrec)/el.Seconds(), "records/s")
			b.ReportMetric(cpuSeconds(ru0, ru1)*1e9/float64(b.N), "cpu-ns/msg")
			b.ReportMetric(float64(loop.Nanoseconds())/float64(b.N), "loop-cpu-ns/msg")
			b.ReportMetric(benchMetric(b, rec, "ipfix_balancer_dropped_messages_total", `reason="writer_queue_full"`), "drops")
		})
		b.Run(fmt.Sprintf("tcp/%dB", size), func(b *testing.B) {
			r := startRecording(b, recordingConfig(benchDir(b), "fullflow", 10*time.Minute), nil)
			conn, err := net.Dial("tcp", r.Addr().String())
			require.NoError(b, err)
			defer conn.Close()
			body := bytes.Join(tr.messages[1:], nil)
			_, err = conn.Write(tr.messages[0])
			require.NoError(b, err)
			b.SetBytes(int64(len(tr.messages[1])))
			b.ResetTimer()
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			start := time.Now()
			// b.N messages: whole passes over body, then a prefix.
			left := b.N
			for left > 0 {
				k := min(left, len(tr.messages)-1)
				end := 0
				for _, m := range tr.messages[1 : 1+k] {
					end += len(m)
				}
				_, err := conn.Write(body[:end])
				require.NoError(b, err)
				left -= k
			}
			testenv.WaitFor(b, time.Minute, "all written", func() bool {
				return r.metric(b, "ipfix_balancer_dump_written_messages_total")+
					r.metric(b, "ipfix_balancer_dropped_messages_total", `reason="writer_queue_full"`) >= float64(b.N+1)
			})
			el := time.Since(start)
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(r.metric(b, "ipfix_balancer_dump_written_records_total")/el.Seconds(), "records/s")
			b.ReportMetric(cpuSeconds(ru0, ru1)*1e9/float64(b.N), "cpu-ns/msg")
			b.ReportMetric(r.metric(b, "ipfix_balancer_dropped_messages_total", `reason="writer_queue_full"`), "drops")
			r.stop()
		})
	}
}

// benchDir is where benchmarks record: $IPFIX_BENCH_DIR (e.g. a tmpfs, to
// measure without the disk's dirty-page throttling) or a t.TempDir.
func benchDir(b *testing.B) string {
	root := os.Getenv("IPFIX_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "bench")
	require.NoError(b, err)
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	require.NoError(b, unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts))
	return time.Duration(ts.Nano())
}

func cpuSeconds(a, b syscall.Rusage) float64 {
	d := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return d(b.Utime) - d(a.Utime) + d(b.Stime) - d(a.Stime)
}

func benchMetric(b *testing.B, rec *balancer.TestRecorder, name, label string) float64 {
	var buf bytes.Buffer
	rec.Metrics().WritePrometheus(&buf)
	for _, line := range strings.Split(buf.String(), "\n") {
		if series, value, ok := strings.Cut(line, " "); ok && strings.HasPrefix(series, name+"{") && strings.Contains(series, label) {
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(b, err)
			return v
		}
	}
	return 0
}

// A dump name never comes back: not after the loader deleted the file
// (after_load = "delete"), not for a recorder started again in the same
// window at the same instant (a restart or reload), so the loader's ledger
// never takes a new dump for one it loaded (#10 item 4).
func TestRecordingNamesNeverRepeat(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock(t, "2026-11-22T10:03:17Z")
	tr := makeTraffic(t, 300, 1, 1400, 1)
	seen := map[string]bool{}
	for i := range 3 {
		r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), clk)
		e := dialExporter(t, r.Addr())
		sent := 0
		sendWindow(t, r, e, tr.messages, &sent)
		r.waitMetric(t, float64(tr.count), "ipfix_balancer_dump_written_records_total")
		r.stop()
		files := closedDumps(t, dir, "fullflow")
		require.Len(t, files, 1, "run %d", i)
		require.Equal(t, []string{"fullflow_0_20261122T100000Z"}, dumpWindows(t, files))
		name := filepath.Base(files[0])
		assert.False(t, seen[name], "run %d: %s used again", i, name)
		seen[name] = true
		require.NoError(t, os.Remove(files[0])) // as the loader does with after_load = "delete"
	}
}

// A .part of an older version whose final name is taken (by a file another
// process closed) is recovered under a new name of the current grammar, in
// its window; the other file is left alone.
func TestRecordingRecoverNameClash(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "fullflow")
	require.NoError(t, os.MkdirAll(sd, 0o755))
	tr := makeTraffic(t, 3000, 1, 1400, 1)
	whole := bytes.Join(tr.messages[:10], nil)
	taken := filepath.Join(sd, "fullflow_0_20261122T100000Z.ipfix")
	require.NoError(t, os.WriteFile(taken, []byte("another process's dump"), 0o644))
	require.NoError(t, os.WriteFile(taken+dump.PartSuffix, whole, 0o644))

	clk := newFakeClock(t, "2026-11-22T11:00:00Z")
	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), clk)
	r.waitMetric(t, 1, "ipfix_balancer_dump_recovered_files_total")
	got, err := os.ReadFile(taken)
	require.NoError(t, err)
	assert.Equal(t, "another process's dump", string(got), "never replaced")
	assert.NoFileExists(t, taken+dump.PartSuffix)
	var recovered []string
	for _, p := range closedDumps(t, dir, "fullflow") {
		if p != taken {
			recovered = append(recovered, p)
		}
	}
	require.Equal(t, []string{"fullflow_0_20261122T100000Z"}, dumpWindows(t, recovered))
	b, err := os.ReadFile(recovered[0])
	require.NoError(t, err)
	assert.True(t, bytes.Equal(whole, b))
}

// A stop right after a reload that swapped the dump writer: the retired writer
// closes its dump before the receiver says it stopped (a process exits then), so
// a clean stop leaves no .part and every message is in a closed dump.
func TestRecordingStopRightAfterReload(t *testing.T) {
	for round := range 3 {
		dir := t.TempDir()
		cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
		var log syncBuffer
		opts := balancer.Options{ShutdownTimeout: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(&log, nil))}
		rcv, stop := runReceiver(t, cfg, opts)
		r := &recording{Receiver: rcv, stop: stop}
		e := dialExporter(t, r.Addr())
		tr := makeTraffic(t, 300_000, 1, 1400, 1)
		sent := 0
		sendWindow(t, r, e, tr.messages, &sent)
		cfg.Recording.RotateRecords = 1_000_000 // a new writer
		require.NoError(t, r.Reconfigure(cfg))
		require.NoError(t, e.conn.Close()) // the DPI is gone: the stop does not wait for it
		r.stop()

		text := log.String()
		closed, stopped := strings.Index(text, "msg=\"dump closed\""), strings.Index(text, "msg=\"receiver stopped\"")
		require.True(t, closed >= 0 && stopped >= 0, "round %d: log:\n%s", round, text)
		require.Less(t, closed, stopped, "round %d: the retired writer closed its dump after the receiver stopped", round)
		var parts []string
		require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && strings.HasSuffix(p, ".part") {
				parts = append(parts, p)
			}
			return nil
		}))
		require.Empty(t, parts, "round %d: a clean stop leaves no .part", round)
		data, _ := readDumps(t, closedDumps(t, dir, "fullflow"))
		require.Len(t, data, len(tr.messages), "round %d: every message in a closed dump", round)
	}
}
