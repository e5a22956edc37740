package spool

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

const labels = `stream="fullflow",dpi="0",subreceiver="test"`

func segments(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if _, err := dump.ParseSegment(e.Name()); err == nil {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out
}

func appendAll(t *testing.T, s *Spool, msgs [][]byte) {
	t.Helper()
	for i, m := range msgs {
		deadline := time.After(30 * time.Second)
		for !s.Append(m) {
			// The buffer is full: the test wants every message, so it waits.
			select {
			case <-deadline:
				t.Fatalf("append %d: buffer full for 30 s", i)
			case <-time.After(time.Millisecond):
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := makeStream(6000, 700, 20)
	s, set := openSpool(t, Config{Dir: dir, SegmentBytes: 64 << 10, BufferBytes: 16 << 20})
	buffered := 0
	for _, m := range st.msgs {
		require.True(t, s.Append(m), "buffer of 16 MiB full")
		buffered++
	}
	got := drain(t, s, len(st.msgs), 50, time.Minute)
	checkSame(t, st, 0, got)
	require.Eventually(t, s.Empty, 10*time.Second, 10*time.Millisecond)
	drops := counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="buffer_full"}`)
	assert.Equal(t, 0, drops)
	assert.Equal(t, len(st.msgs), counter(set, `ipfix_balancer_spool_replayed_messages_total{`+labels+`}`))
	// Every segment replayed in full is deleted, the one written last
	// included, while the spool runs: a drained spool leaves no file and
	// counts no byte (an operator alerts on spool bytes).
	bytes := func() int { return counter(set, `ipfix_balancer_spool_bytes{`+labels+`}`) }
	assert.Eventually(t, func() bool { return len(segments(t, dir)) == 0 && bytes() == 0 }, 10*time.Second, 10*time.Millisecond)
	require.Empty(t, segments(t, dir), "a drained spool keeps segments")
	require.Zero(t, bytes(), "a drained spool counts bytes")
	require.NoError(t, s.Close())
	assert.Empty(t, segments(t, dir))
}

// TestSegmentsDecodeAlone: each segment decodes with a fresh template cache
// (ipfix alone) and with tshark, and holds the stream's messages in order.
func TestSegmentsDecodeAlone(t *testing.T) {
	dir := t.TempDir()
	st := makeStream(3000, 400, 20)
	s, err := New(Config{Dir: dir, SegmentBytes: 64 << 10, BufferBytes: 16 << 20}, labels, nil, nil)
	require.NoError(t, err)
	s.Run()
	appendAll(t, s, st.msgs)
	require.NoError(t, s.Close())
	segs := segments(t, dir)
	require.Greater(t, len(segs), 3, "want several rotations")
	idx := 0
	for _, path := range segs {
		n, err := dump.ParseSegment(filepath.Base(path))
		require.NoError(t, err)
		f, err := os.Open(path)
		require.NoError(t, err)
		dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
		fr := ipfix.NewFileReader(f)
		var octets []string
		frames := 0
		for {
			msg, err := fr.Next()
			if err != nil {
				break
			}
			frames++
			require.NoError(t, dec.Decode(msg, time.Time{}, func(r *ipfix.Record) error { return nil }), "%s at %d", path, fr.Offset())
			if fr.Offset() >= n.Prime {
				require.Equal(t, st.msgs[idx], msg, "%s at %d: stream message %d", path, fr.Offset(), idx)
				idx++
			}
			_ = octets
		}
		f.Close()
		// tshark decodes the same file: one frame per message, every data
		// record's octetDeltaCount.
		frames2, records := tsharkCount(t, path)
		assert.Equal(t, frames, frames2, "%s: tshark frames", path)
		assert.Greater(t, records, 0, "%s: tshark decoded no record", path)
	}
	assert.Equal(t, len(st.msgs), idx)
}

func tsharkCount(t *testing.T, path string) (frames, octets int) {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	require.NoError(t, err, "tshark not found: run make test (installs it)")
	out, err := exec.Command(bin, "-r", path, "-n", "-T", "fields", "-e", "frame.number", "-e", "cflow.octets", "-E", "occurrence=a", "-E", "aggregator=|").Output()
	require.NoError(t, err, "tshark -r %s", path)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		frames++
		if f := strings.SplitN(l, "\t", 2); len(f) == 2 && f[1] != "" {
			octets += len(strings.Split(f[1], "|"))
		}
	}
	return frames, octets
}

// TestResumeMidSegment: a successor resumes inside a segment after a clean
// Close, gets the templates in force there first, and no duplicate.
func TestResumeMidSegment(t *testing.T) {
	dir := t.TempDir()
	st := makeStream(2000, 300, 20)
	s, err := New(Config{Dir: dir, SegmentBytes: 1 << 20, BufferBytes: 16 << 20}, labels, nil, nil)
	require.NoError(t, err)
	s.Run()
	appendAll(t, s, st.msgs)
	first := drain(t, s, 777, 1, time.Minute)
	require.NoError(t, s.Close())
	checkSame(t, st, 0, first)

	s2, set := openSpool(t, Config{Dir: dir, SegmentBytes: 1 << 20})
	rest := drain(t, s2, len(st.msgs)-777, 10, time.Minute)
	checkSame(t, st, 777, rest)
	assert.Equal(t, 0, counter(set, `ipfix_balancer_spool_duplicate_messages_total{`+labels+`}`))
}

// TestCrash: a child process spools, replays part and is killed (SIGKILL);
// then a segment tail is torn. The next open delivers every message that was
// not acknowledged, at least once; duplicates are those acknowledged after
// the last persisted position, and counted exactly; those handed to the
// connection after the last acknowledgement are counted as possible
// duplicates.
func TestCrash(t *testing.T) {
	if dir := os.Getenv("SPOOL_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SPOOL_CRASH_CHILD="+dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "child must die by SIGKILL; output %s", out)
	line := strings.TrimSpace(string(out))
	line = line[strings.LastIndex(line, "acked ")+len("acked "):]
	var acked, handed int
	_, err = fmt.Sscanf(line, "%d handed %d", &acked, &handed)
	require.NoError(t, err, "child output %q", out)

	st := makeStream(crashMessages, 300, 20)
	pos, err := readPosition(filepath.Join(dir, dump.PositionFile))
	require.NoError(t, err)
	// Tear the last segment in the middle of its last message.
	segs := segments(t, dir)
	require.NotEmpty(t, segs)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-7))

	s, set := openSpool(t, Config{Dir: dir, SegmentBytes: 256 << 10})
	assert.Equal(t, 1, counter(set, `ipfix_balancer_spool_torn_segments_total{`+labels+`}`))
	// Every stream message from the first one not acknowledged on, but for the
	// torn one (the last), must come; replay starts at or before it.
	var got *replayed
	want := crashMessages - 1
	got = drainAll(t, s, 2*time.Second)
	require.NotEmpty(t, got.msgs)
	start := slices.IndexFunc(st.msgs, func(m []byte) bool { return bytes.Equal(m, got.msgs[0]) })
	require.GreaterOrEqual(t, start, 0)
	require.LessOrEqual(t, start, acked, "replay resumed after messages never acknowledged (loss)")
	checkSame(t, st, start, got)
	assert.Equal(t, want, start+len(got.msgs), "every message up to the torn one")
	dups := acked - start
	assert.Equal(t, 234, dups, "acknowledged since the last persisted position")
	assert.Equal(t, dups, counter(set, `ipfix_balancer_spool_duplicate_messages_total{`+labels+`}`), "persisted position %v", pos)
	assert.Equal(t, 100, handed)
	assert.Equal(t, handed, counter(set, `ipfix_balancer_spool_possible_duplicate_messages_total{`+labels+`}`),
		"handed to the connection after the last acknowledgement: possible duplicates")
	t.Logf("acked by the child %d, persisted position %v, replayed again %d", acked, pos, dups)
}

const crashMessages = 3000

func crashChild(dir string) {
	st := makeStream(crashMessages, 300, 20)
	s, err := New(Config{Dir: dir, SegmentBytes: 256 << 10, BufferBytes: 16 << 20, PersistMessages: 1000, PersistEvery: time.Hour}, labels, nil, nil)
	if err != nil {
		panic(err)
	}
	s.Run()
	for _, m := range st.msgs {
		if !s.Append(m) {
			panic("buffer full")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.written() < crashMessages && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // all on disk first: the buffer is lost in a crash
	}
	// Ack 1000 messages one by one, wait for that position to be persisted,
	// ack 234 more (under PersistMessages: not persisted), then die.
	n := 0
	var last Message
	ack := func(upTo int) {
		for n < upTo && time.Now().Before(deadline) {
			m, ok := s.Next()
			if !ok {
				time.Sleep(time.Millisecond)
				continue
			}
			s.Ack(m)
			last = m
			if !m.Templates {
				n++
			}
		}
	}
	ack(1000)
	for time.Now().Before(deadline) {
		if p, _ := readPosition(filepath.Join(dir, dump.PositionFile)); p == last.End {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ack(1234)
	// Hand 100 more to a "connection", as a subreceiver does before it
	// writes a batch, and die before they are known taken.
	handed := 0
	for handed < 100 && time.Now().Before(deadline) {
		m, ok := s.Next()
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		s.Handed(m)
		if !m.Templates {
			handed++
		}
	}
	fmt.Printf("acked %d handed %d\n", n, handed)
	os.Stdout.Sync()
	p, _ := os.FindProcess(os.Getpid())
	_ = p.Kill()
	time.Sleep(time.Minute)
}

// drainAll pulls until nothing came for idle.
func drainAll(t *testing.T, s *Spool, idle time.Duration) *replayed {
	t.Helper()
	r := &replayed{}
	cache := ipfix.NewTemplateCache(0)
	var last Message
	quiet := time.Now()
	for i := 0; i < 10_000_000; i++ {
		m, ok := s.Next()
		if !ok {
			if time.Since(quiet) > idle {
				break
			}
			if last.End != (Position{}) {
				s.Ack(last)
			}
			select {
			case <-time.After(time.Millisecond):
			}
			continue
		}
		quiet = time.Now()
		r.add(cache, m)
		last = m
	}
	s.Ack(last)
	return r
}

// TestQuota: with a small max_bytes, replayed + counted drops == appended,
// exactly, for both drop settings.
func TestQuota(t *testing.T) {
	for _, drop := range []Drop{DropOldest, DropNewest} {
		t.Run(drop.String(), func(t *testing.T) {
			dir := t.TempDir()
			st := makeStream(8000, 900, 100)
			s, set := openSpool(t, Config{Dir: dir, MaxBytes: 1 << 20, Drop: drop, BufferBytes: 16 << 20, ReadAheadBytes: 256 << 10})
			appendAll(t, s, st.msgs)
			got := drainAll(t, s, 3*time.Second)
			dropped := 0
			for _, r := range dropReasons {
				dropped += counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="`+r+`"}`)
			}
			replayed := counter(set, `ipfix_balancer_spool_replayed_messages_total{`+labels+`}`)
			t.Logf("appended %d replayed %d dropped %d", len(st.msgs), replayed, dropped)
			assert.Equal(t, len(got.msgs), replayed)
			assert.Greater(t, dropped, 0, "the quota must have dropped something")
			assert.Equal(t, len(st.msgs), replayed+dropped, "replayed + dropped == appended")
			// What came is in order, byte for byte, templates right.
			seen := 0
			for _, m := range got.msgs {
				k := slices.IndexFunc(st.msgs[seen:], func(x []byte) bool { return bytes.Equal(x, m) })
				require.GreaterOrEqual(t, k, 0, "replayed message not in the stream after %d", seen)
				seen += k + 1
			}
		})
	}
}

// TestTemplatesAtStart: spooling that starts in the middle of a session gets
// the templates in force from the caller; the first segment starts with them.
func TestTemplatesAtStart(t *testing.T) {
	dir := t.TempDir()
	st := makeStream(500, 0, 20)
	s, _ := openSpool(t, Config{Dir: dir, BufferBytes: 16 << 20})
	s.Templates(append(append([]byte(nil), st.msgs[0]...), st.msgs[1]...))
	appendAll(t, s, st.msgs[2:])
	got := drain(t, s, len(st.msgs)-2, 10, time.Minute)
	checkSame(t, st, 2, got)
	segs := segments(t, dir)
	require.NotEmpty(t, segs)
	n, err := dump.ParseSegment(filepath.Base(segs[0]))
	require.NoError(t, err)
	assert.Equal(t, int64(len(st.msgs[0])+len(st.msgs[1])), n.Prime, "the segment opens with both domains' templates")
}

// TestSetLimits: a quota set on reload applies to the next messages.
func TestSetLimits(t *testing.T) {
	dir := t.TempDir()
	st := makeStream(4000, 0, 20)
	s, set := openSpool(t, Config{Dir: dir, BufferBytes: 16 << 20})
	s.SetLimits(256<<10, 0, DropNewest)
	appendAll(t, s, st.msgs)
	got := drainAll(t, s, 2*time.Second)
	quota := counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="quota"}`)
	assert.Greater(t, quota, 0, "the lowered quota refused messages")
	assert.Equal(t, len(st.msgs), len(got.msgs)+quota)
	checkSame(t, st, 0, got) // newest dropped: what came is the stream's head, in order
}
