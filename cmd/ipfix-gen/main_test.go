package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// genBinary is the ipfix-gen built once for the whole-binary tests.
var genBinary string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinary(m, &genBinary, "ipfix-gen", "."))
}

// result is one run of the binary.
type result struct {
	sum    summary
	stdout string
	stderr string
	code   int
}

// lockedBuffer is a bytes.Buffer safe to read while the process writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits (bounded) until the output contains s.
func (l *lockedBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, l.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs ipfix-gen with args (bounded by a minute); wait returns its result.
func start(t *testing.T, args ...string) func() result {
	t.Helper()
	wait, _, _ := startProc(t, args...)
	return wait
}

// startProc is start, also returning the process id and its live stderr.
func startProc(t *testing.T, args ...string) (func() result, int, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, genBinary, args...)
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	require.NoError(t, cmd.Start())
	var once sync.Once
	var res result
	wait := func() result {
		once.Do(func() {
			defer cancel()
			err := cmd.Wait()
			res = result{stdout: stdout.String(), stderr: stderr.String()}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				res.code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			if res.code != 2 {
				lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
				require.Len(t, lines, 1, "stdout must be one JSON line: %q\nstderr:\n%s", res.stdout, res.stderr)
				require.NoError(t, json.Unmarshal([]byte(lines[0]), &res.sum), "stdout %q", res.stdout)
			}
		})
		return res
	}
	t.Cleanup(func() { wait() })
	return wait, cmd.Process.Pid, stderr
}

func runGen(t *testing.T, args ...string) result {
	t.Helper()
	res := start(t, args...)()
	require.Zero(t, res.code, "ipfix-gen %s\nstderr:\n%s", strings.Join(args, " "), res.stderr)
	return res
}

// readFile decodes an IPFIX file: messages, records, and whether the first
// message holds templates only.
type fileContent struct {
	messages, records, templateMessages int
	firstIsTemplates                    bool
	seqGaps                             uint64
	maxMessage                          int
}

func decodeFile(t *testing.T, path string) fileContent {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	var seq ipfix.SequenceTracker
	var fc fileContent
	for {
		msg, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		fc.maxMessage = max(fc.maxMessage, len(msg))
		data, tmpl := setKinds(msg)
		if fc.messages == 0 {
			fc.firstIsTemplates = tmpl > 0 && data == 0
		}
		if tmpl > 0 {
			fc.templateMessages++
		}
		fc.messages++
		n := 0
		require.NoError(t, dec.Decode(msg, time.Now(), func(*ipfix.Record) error { n++; return nil }))
		fc.records += n
		lost, _ := seq.Observe(binary.BigEndian.Uint32(msg[12:]), binary.BigEndian.Uint32(msg[8:]), n)
		fc.seqGaps += lost
	}
	return fc
}

// setKinds counts the data sets and template sets of a message.
func setKinds(msg []byte) (data, templates int) {
	it := ipfix.Sets(msg)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		if s.ID >= ipfix.MinDataSetID {
			data++
		} else {
			templates++
		}
	}
	return data, templates
}

func TestOutFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"fullflow", []string{"-stream", "fullflow"}},
		{"clickstream-v6", []string{"-stream", "clickstream", "-ipv6-share", "0.5"}},
		{"dnsflow-big-messages", []string{"-stream", "dnsflow", "-msg-size", "65535"}},
		{"sip", []string{"-stream", "sip", "-seed", "42"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.ipfix")
			res := runGen(t, append(tc.args, "-records", "3000", "-out", path)...)
			fc := decodeFile(t, path)
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, 3000, fc.records)
			assert.True(t, fc.firstIsTemplates, "templates come first")
			assert.Equal(t, summary{Messages: int64(fc.messages), Records: 3000, Bytes: st.Size(), Templates: res.sum.Templates,
				Seconds: res.sum.Seconds}, res.sum)
			assert.Equal(t, map[bool]int64{true: 2, false: 1}[tc.name == "clickstream-v6"], res.sum.Templates)
			assert.Zero(t, fc.seqGaps)
		})
	}
}

// TestDeterministicFile: equal seeds give equal records.
func TestDeterministicFile(t *testing.T) {
	dir := t.TempDir()
	recs := func(name, seed string) map[string]int {
		path := filepath.Join(dir, name)
		runGen(t, "-stream", "http_reply", "-records", "500", "-seed", seed, "-out", path)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		m := map[string]int{}
		dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
		fr := ipfix.NewFileReader(bytes.NewReader(data))
		for {
			msg, err := fr.Next()
			if err != nil {
				break
			}
			require.NoError(t, dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
				// Time stamps follow the clock: leave them out.
				m[testenv.Fingerprint(&ipfix.Record{Template: r.Template, Values: r.Values[1:]})]++
				return nil
			}))
		}
		return m
	}
	a, b, c := recs("a", "5"), recs("b", "5"), recs("c", "6")
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
}

// sink is a TCP or UDP receiver on loopback counting bytes and messages per
// connection (TCP) or datagram (UDP).
type sink struct {
	mu   sync.Mutex
	addr string
	sinkStats
	seq  ipfix.SequenceTracker
	done chan struct{}
}

type sinkStats struct {
	bytes     int64
	messages  int64
	records   int64
	datagrams int64
	maxDgram  int
	badDgrams int
	// firstSets is, per TCP connection, the set ids of its first message.
	firstSets [][]uint16
	templSets int
}

func startTCPSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &sink{addr: ln.Addr().String(), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serveTCP(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

func (s *sink) serveTCP(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	fr := ipfix.NewFileReader(c)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	first := true
	for {
		msg, err := fr.Next()
		if err != nil {
			return
		}
		n := 0
		_ = dec.Decode(msg, time.Now(), func(*ipfix.Record) error { n++; return nil })
		s.mu.Lock()
		if first {
			var ids []uint16
			it := ipfix.Sets(msg)
			for set, ok := it.Next(); ok; set, ok = it.Next() {
				ids = append(ids, set.ID)
			}
			s.firstSets = append(s.firstSets, ids)
			first = false
		}
		s.bytes += int64(len(msg))
		s.messages++
		s.records += int64(n)
		s.mu.Unlock()
	}
}

func startUDPSink(t *testing.T) *sink {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	_ = pc.(*net.UDPConn).SetReadBuffer(16 << 20)
	s := &sink{addr: pc.LocalAddr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.datagrams++
			s.bytes += int64(n)
			s.maxDgram = max(s.maxDgram, n)
			msgs := 0
			bad, _ := ipfix.SplitDatagram(buf[:n], func(msg []byte) {
				msgs++
				if _, tm := setKinds(msg); tm > 0 {
					s.templSets++
				}
				recs := 0
				_ = dec.Decode(msg, time.Now(), func(*ipfix.Record) error { recs++; return nil })
				s.records += int64(recs)
				s.seq.Observe(binary.BigEndian.Uint32(msg[12:]), binary.BigEndian.Uint32(msg[8:]), recs)
			})
			if bad > 0 || msgs != 1 {
				s.badDgrams++
			}
			s.messages += int64(msgs)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-s.done
	})
	return s
}

func (s *sink) snapshot() sinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.sinkStats
	st.firstSets = append([][]uint16(nil), s.firstSets...)
	return st
}

// waitBytes waits (bounded) until the sink got n bytes.
func (s *sink) waitBytes(t *testing.T, n int64) sinkStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := s.snapshot(); got.bytes >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := s.snapshot()
	t.Fatalf("sink got %d bytes, want %d", got.bytes, n)
	return got
}

func TestTCP(t *testing.T) {
	s := startTCPSink(t)
	res := runGen(t, "-stream", "clickstream", "-records", "20000", "-ipv6-share", "0.2", "-to", "tcp://"+s.addr)
	got := s.waitBytes(t, res.sum.Bytes)
	assert.Equal(t, res.sum.Bytes, got.bytes)
	assert.Equal(t, res.sum.Messages, got.messages)
	assert.Equal(t, int64(20000), res.sum.Records)
	assert.Equal(t, int64(20000), got.records)
	assert.Equal(t, int64(2), res.sum.Templates)
	assert.Zero(t, res.sum.Reconnects)
	require.Len(t, got.firstSets, 1)
	assert.Equal(t, []uint16{ipfix.TemplateSetID}, got.firstSets[0], "the session starts with templates")
}

func TestTCPLargeMessages(t *testing.T) {
	s := startTCPSink(t)
	res := runGen(t, "-stream", "fullflow", "-records", "5000", "-msg-size", "65535", "-to", "tcp://"+s.addr)
	got := s.waitBytes(t, res.sum.Bytes)
	assert.Equal(t, res.sum.Messages, got.messages)
	assert.Equal(t, int64(5000), got.records)
	assert.Greater(t, res.sum.Bytes/res.sum.Messages, int64(20000), "messages are large")
}

func TestUDP(t *testing.T) {
	s := startUDPSink(t)
	// Paced, so that loopback drops nothing; templates every 100 ms.
	res := runGen(t, "-stream", "dnsflow", "-records", "6000", "-rate", "15000", "-mtu", "1000",
		"-template-every", "100ms", "-ipv6-share", "0.5", "-to", "udp://"+s.addr)
	got := s.waitBytes(t, res.sum.Bytes)
	assert.Equal(t, res.sum.Messages, got.datagrams, "one message per datagram")
	assert.Equal(t, int64(6000), got.records)
	assert.LessOrEqual(t, got.maxDgram, 1000-28, "datagrams fit the MTU")
	assert.Greater(t, got.maxDgram, 800, "datagrams are filled")
	assert.Zero(t, got.badDgrams, "every datagram holds one whole message")
	assert.GreaterOrEqual(t, got.templSets, 3, "templates re-sent periodically")
	assert.Equal(t, int64(got.templSets*2), res.sum.Templates)
	assert.GreaterOrEqual(t, res.sum.Seconds, 0.35, "paced at 15000 records/s")
}

func TestReplay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.ipfix")
	gen := runGen(t, "-stream", "mail", "-records", "2000", "-out", path)

	t.Run("tcp", func(t *testing.T) {
		s := startTCPSink(t)
		res := runGen(t, "-replay", path, "-loops", "3", "-to", "tcp://"+s.addr)
		got := s.waitBytes(t, 3*gen.sum.Bytes)
		assert.Equal(t, summary{Messages: 3 * gen.sum.Messages, Records: 6000, Bytes: 3 * gen.sum.Bytes,
			Templates: 3, Seconds: res.sum.Seconds}, res.sum)
		assert.Equal(t, 3*gen.sum.Messages, got.messages)
		assert.Equal(t, int64(6000), got.records)
	})
	t.Run("file", func(t *testing.T) {
		out := filepath.Join(dir, "out.ipfix")
		runGen(t, "-replay", path, "-loops", "4", "-out", out)
		fc := decodeFile(t, out)
		assert.Equal(t, 8000, fc.records)
		assert.Equal(t, 4*int(gen.sum.Messages), fc.messages)
		assert.Zero(t, fc.seqGaps, "sequence numbers go on across loops")
	})
	t.Run("paced", func(t *testing.T) {
		out := filepath.Join(dir, "paced.ipfix")
		n := gen.sum.Messages // about 300 messages at 1000/s
		res := runGen(t, "-replay", path, "-rate", "1000", "-out", out)
		assert.InDelta(t, float64(n)/1000, res.sum.Seconds, 0.15)
	})
	t.Run("udp-split", func(t *testing.T) {
		big := filepath.Join(dir, "big.ipfix")
		runGen(t, "-stream", "clickstream", "-records", "3000", "-msg-size", "30000", "-out", big)
		s := startUDPSink(t)
		res := runGen(t, "-replay", big, "-rate", "20000", "-to", "udp://"+s.addr)
		got := s.waitBytes(t, res.sum.Bytes)
		assert.Equal(t, int64(3000), got.records)
		assert.Equal(t, int64(3000), res.sum.Records)
		assert.LessOrEqual(t, got.maxDgram, 1472)
		assert.Zero(t, got.badDgrams)
	})
}

// TestReplayForeign replays a file written by ipfix.Encoder rather than by
// ipfix-gen: two observation domains, an options template.
func TestReplayForeign(t *testing.T) {
	path := filepath.Join(t.TempDir(), "foreign.ipfix")
	var file []byte
	for _, odid := range []uint32{7, 9} {
		enc := ipfix.NewEncoder(odid, 512)
		enc.SetOutput(func(m []byte) { file = append(file, m...) })
		tm := ipfix.NewTemplate(300, []ipfix.FieldSpecifier{{ID: 8, Length: 4}, {ID: 1, Length: 8}})
		ot := ipfix.NewOptionsTemplate(301, 1, []ipfix.FieldSpecifier{{ID: 149, Length: 4}, {ID: 41, Length: 8}})
		enc.AddTemplate(tm)
		enc.AddTemplate(ot)
		for i := range 100 {
			require.NoError(t, enc.AppendRecord(300, binary.BigEndian.AppendUint64([]byte{10, 0, 0, byte(i)}, uint64(i))))
		}
		require.NoError(t, enc.AppendRecord(301, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, odid), 5)))
		enc.Flush()
	}
	require.NoError(t, os.WriteFile(path, file, 0o644))
	s := startTCPSink(t)
	res := runGen(t, "-replay", path, "-loops", "2", "-to", "tcp://"+s.addr)
	got := s.waitBytes(t, int64(2*len(file)))
	assert.Equal(t, int64(2*202), res.sum.Records)
	assert.Equal(t, int64(2*202), got.records)
	assert.Equal(t, int64(2*4), res.sum.Templates)
}

func TestTCPReconnect(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	wait := start(t, "-stream", "fullflow", "-records", "60000", "-rate", "20000", "-to", "tcp://"+c.Addr())
	require.True(t, c.WaitRecords(2000, 20*time.Second), "records before the collector restarts")
	c.Stop()
	time.Sleep(150 * time.Millisecond) // some writes fail while it is down
	c.Restart()
	res := wait()
	require.Zero(t, res.code, res.stderr)
	assert.GreaterOrEqual(t, res.sum.Reconnects, int64(1))
	assert.Equal(t, int64(60000), res.sum.Records)
	assert.Contains(t, res.stderr, "connection lost")
	// Every record of the second session decoded: its templates came first.
	assert.Zero(t, c.Stats().Undecoded)
	assert.GreaterOrEqual(t, c.Stats().Sessions, 2)
}

func TestConnectRetry(t *testing.T) {
	// A free port, nobody listening yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	wait, _, stderr := startProc(t, "-stream", "ssl_reply", "-records", "1000", "-to", "tcp://"+addr)
	stderr.waitFor(t, "connect failed")
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	defer ln.Close()
	conn, err := ln.Accept()
	require.NoError(t, err)
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	require.NoError(t, err)
	res := wait()
	require.Zero(t, res.code, res.stderr)
	assert.Equal(t, res.sum.Bytes, n)
}

func TestDuration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.ipfix")
	res := runGen(t, "-stream", "im", "-duration", "500ms", "-rate", "2000", "-out", path)
	assert.InDelta(t, 1000, res.sum.Records, 150)
	assert.InDelta(t, 0.5, res.sum.Seconds, 0.15)
	assert.Equal(t, int(res.sum.Records), decodeFile(t, path).records)
}

func TestSignal(t *testing.T) {
	s := startTCPSink(t)
	wait, pid, _ := startProc(t, "-stream", "raw", "-duration", "1m", "-rate", "5000", "-progress-every", "100ms", "-to", "tcp://"+s.addr)
	s.waitBytes(t, 10000)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	res := wait()
	require.Zero(t, res.code, res.stderr)
	assert.Greater(t, res.sum.Records, int64(0))
	assert.Less(t, res.sum.Seconds, 30.0)
	assert.Contains(t, res.stderr, "msg=progress")
	got := s.waitBytes(t, res.sum.Bytes)
	assert.Equal(t, res.sum.Records, got.records)
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	f := func(want string, args ...string) {
		t.Helper()
		res := start(t, args...)()
		assert.Equal(t, 2, res.code, "args %q", args)
		assert.Contains(t, res.stderr, want, "args %q", args)
		assert.Empty(t, res.stdout)
	}
	out := filepath.Join(dir, "x.ipfix")
	f("need -records or -duration", "-stream", "fullflow", "-out", out)
	f("need exactly one of -out FILE and -to URL", "-stream", "fullflow", "-records", "1")
	f("need exactly one of -out FILE and -to URL", "-stream", "fullflow", "-records", "1", "-out", out, "-to", "tcp://127.0.0.1:1")
	f(`unknown stream "netflow"`, "-stream", "netflow", "-records", "1", "-out", out)
	f("want tcp://HOST:PORT or udp://HOST:PORT", "-stream", "fullflow", "-records", "1", "-to", "sctp://127.0.0.1:1")
	f("-msg-size 70000", "-stream", "fullflow", "-records", "1", "-msg-size", "70000", "-out", out)
	f("-ipv6-share 2", "-stream", "fullflow", "-records", "1", "-ipv6-share", "2", "-out", out)
	f("-stream and -replay exclude each other", "-stream", "fullflow", "-replay", out, "-out", out)
	f("-loops 0", "-replay", out, "-loops", "0", "-out", out)
	f("-records applies to generation", "-replay", out, "-records", "5", "-out", out)
	f("-mtu 500", "-stream", "fullflow", "-records", "1", "-mtu", "500", "-to", "udp://127.0.0.1:1")
}

func TestReplayBadFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ipfix")
	require.NoError(t, os.WriteFile(bad, []byte("this is not ipfix at all"), 0o644))
	res := start(t, "-replay", bad, "-out", filepath.Join(dir, "o.ipfix"))()
	assert.Equal(t, 1, res.code)
	assert.Contains(t, res.stderr, "message at offset 0")
}
