package balancer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Two exporters whose sessions both define template 256 of domain 0, with
// different layouts: two IPv4 addresses (8-byte records), two 64-bit counters
// (16-byte records).
var (
	addrsLayout    = ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 8, Length: 4}, {ID: 12, Length: 4}})
	countersLayout = ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}})
)

const sessionRecords = 20_000

// layoutMessages encodes records 1..n of tm for domain 0, every field of a
// record holding its number.
func layoutMessages(t testing.TB, tm *ipfix.Template, n int) [][]byte {
	t.Helper()
	var msgs [][]byte
	enc := ipfix.NewEncoder(0, 1400)
	enc.SetExportTime(1_700_000_000)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, bytes.Clone(m)) })
	enc.AddTemplate(tm)
	rec := make([]byte, 0, 16)
	for id := uint64(1); id <= uint64(n); id++ {
		rec = rec[:0]
		for _, f := range tm.Fields {
			rec = ipfix.AppendUint(rec, id, int(f.Length))
		}
		require.NoError(t, enc.AppendRecord(tm.ID, rec))
	}
	enc.Flush()
	return msgs
}

// checkLayouts checks decoded records (testenv.Fingerprint): each is of one of
// the two layouts, its fields all equal (decoded with its own session's
// layout), and each record of each session arrived copies times.
func checkLayouts(t testing.TB, fps map[string]int, copies int, what string) {
	t.Helper()
	counts := map[int][]int{4: make([]int, sessionRecords+1), 8: make([]int, sessionRecords+1)}
	foreign := 0
	for fp, v := range fps {
		b := []byte(fp)[2:] // the template id downstream is the balancer's choice
		var vals [][]byte
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			if len(b) < 2+n {
				break
			}
			vals = append(vals, b[2:2+n])
			b = b[2+n:]
		}
		if len(vals) != 2 || len(b) != 0 || !bytes.Equal(vals[0], vals[1]) || counts[len(vals[0])] == nil {
			foreign += v
			continue
		}
		id := 0
		for _, c := range vals[0] {
			id = id<<8 | int(c)
		}
		if id < 1 || id > sessionRecords {
			foreign += v
			continue
		}
		counts[len(vals[0])][id] += v
	}
	assert.Zero(t, foreign, "%s: records decoded with the other session's layout", what)
	for size, name := range map[int]string{4: "addresses", 8: "counters"} {
		wrong, total := 0, 0
		for id := 1; id <= sessionRecords; id++ {
			total += counts[size][id]
			if counts[size][id] != copies {
				wrong++
			}
		}
		assert.Zero(t, wrong, "%s: %s records not arrived %d times each (%d decoded)", what, name, copies, total)
	}
}

// rawCollector reads one TCP subreceiver connection as it is and keeps its
// template records: definitions (downstream id → first field's element id)
// and withdrawals, in order.
type rawCollector struct {
	ln net.Listener
	mu sync.Mutex
	// defined[id] is the element id of the first field of the template last
	// defined with that id; withdrawn lists withdrawn ids in order.
	defined   map[uint16]uint16
	withdrawn []uint16
}

func startRawCollector(t testing.TB) *rawCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &rawCollector{ln: ln, defined: make(map[uint16]uint16)}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

func (c *rawCollector) serve(conn net.Conn) {
	defer conn.Close()
	fr := ipfix.NewFileReader(conn)
	for {
		msg, err := fr.Next()
		if err != nil {
			return
		}
		it := ipfix.Sets(msg)
		for s, ok := it.Next(); ok; s, ok = it.Next() {
			if s.ID != ipfix.TemplateSetID {
				continue
			}
			for b := s.Body; len(b) >= 4; {
				id, count := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
				c.mu.Lock()
				if count == 0 {
					c.withdrawn = append(c.withdrawn, id)
					delete(c.defined, id)
				} else if len(b) >= 8 {
					c.defined[id] = binary.BigEndian.Uint16(b[4:])
				}
				c.mu.Unlock()
				b = b[4+4*count:] // IANA fields only in this test
			}
		}
	}
}

// withdrawnLayout reports whether a template whose first field is element
// elem was withdrawn (it was defined, then withdrawn, and not defined again).
func (c *rawCollector) withdrawnLayout(ids map[uint16]uint16, elem uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range ids {
		if e != elem {
			continue
		}
		_, again := c.defined[id]
		for _, w := range c.withdrawn {
			if w == id && !again {
				return true
			}
		}
	}
	return false
}

func (c *rawCollector) definitions() map[uint16]uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint16]uint16, len(c.defined))
	for k, v := range c.defined {
		out[k] = v
	}
	return out
}

// sendSessions opens one exporter connection per layout and sends their
// messages interleaved, each session's templates first; it returns the
// connections, still open.
func sendSessions(t testing.TB, addr net.Addr) (addrs, counters net.Conn, messages int) {
	t.Helper()
	a, b := layoutMessages(t, addrsLayout, sessionRecords), layoutMessages(t, countersLayout, sessionRecords)
	var conns [2]net.Conn
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(30*time.Second)))
		conns[i] = c
	}
	for i := 0; i < max(len(a), len(b)); i++ {
		for j, msgs := range [][][]byte{a, b} {
			if i < len(msgs) {
				_, err := conns[j].Write(msgs[i])
				require.NoError(t, err)
			}
		}
	}
	return conns[0], conns[1], len(a) + len(b)
}

// Two exporter sessions on one receiver define template 256 of domain 0 with
// different layouts. RFC 7011 §8 scopes templates to a session, so every
// collector downstream must decode each session's records with that
// session's layout; and a session that ends withdraws its templates from the
// collectors' sessions (issue 11 item 1).
func TestSessionsKeepTheirTemplatesDownstream(t *testing.T) {
	for _, mode := range []config.Mode{config.RoundRobin, config.All} {
		t.Run(mode.String(), func(t *testing.T) {
			c1 := testenv.StartCollector(t, "tcp")
			c2 := testenv.StartCollector(t, "tcp")
			raw := startRawCollector(t)
			cfg := receiverConfig(mode, c1, c2)
			if mode == config.All {
				cfg.Subreceivers = append(cfg.Subreceivers, config.Subreceiver{Addr: raw.ln.Addr().String(), Proto: config.TCP})
			}
			r := startReceiver(t, cfg)
			for _, s := range cfg.Subreceivers {
				testenv.WaitFor(t, 10*time.Second, "subreceiver up", func() bool {
					return metricValue(t, r, `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="`+s.Addr+`"}`) == 1
				})
			}
			addrs, _, n := sendSessions(t, r.Addr())
			testenv.WaitFor(t, 30*time.Second, "every message read", func() bool {
				return metricValue(t, r, `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`) == float64(n)
			})
			want := 2 * sessionRecords
			if mode == config.All {
				want *= 2
			}
			deadline := time.Now().Add(20 * time.Second)
			for c1.Stats().Records+c2.Stats().Records < want && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if mode == config.All {
				checkLayouts(t, c1.Records(), 1, "subreceiver 1")
				checkLayouts(t, c2.Records(), 1, "subreceiver 2")
			} else {
				checkLayouts(t, union(c1, c2), 1, "both subreceivers")
			}
			assert.Zero(t, c1.Stats().Undecoded+c2.Stats().Undecoded, "undecoded data sets")
			if mode != config.All {
				return
			}
			// The session with the addresses ends: its template is withdrawn.
			defs := raw.definitions()
			require.Len(t, defs, 2, "two downstream templates, one per session: %v", defs)
			require.NoError(t, addrs.Close())
			testenv.WaitFor(t, 10*time.Second, "the ended session's template withdrawn", func() bool {
				return raw.withdrawnLayout(defs, addrsLayout.Fields[0].ID)
			})
			assert.False(t, raw.withdrawnLayout(defs, countersLayout.Fields[0].ID), "the live session's template stays")
		})
	}
}

// The same two sessions into one dump: it decodes alone, each record with its
// session's layout, for us and for tshark, and holds the withdrawal of the
// template of the session that ended.
func TestSessionsKeepTheirTemplatesInDumps(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	require.NoError(t, err, "tshark is needed (make deps installs it)")
	dir := t.TempDir()
	r := startRecording(t, recordingConfig(dir, "fullflow", 10*time.Minute), nil)
	addrs, _, _ := sendSessions(t, r.Addr())
	r.waitMetric(t, 2*sessionRecords, "ipfix_balancer_dump_written_records_total")
	require.NoError(t, addrs.Close())
	testenv.WaitFor(t, 10*time.Second, "the session closed", func() bool {
		return r.metric(t, "ipfix_balancer_exporter_sessions") == 1
	})
	r.stop()
	files := closedDumps(t, dir, "fullflow")
	require.Len(t, files, 1)
	msgs := readDump(t, files[0])
	checkLayouts(t, decodeAlone(t, files[0], msgs), 1, "dump")

	// The dump's template records: two ids, one withdrawn at the end.
	defined := map[uint16]uint16{}
	var withdrawn []uint16
	for _, m := range msgs {
		it := ipfix.Sets(m)
		for s, ok := it.Next(); ok; s, ok = it.Next() {
			if s.ID != ipfix.TemplateSetID {
				continue
			}
			for b := s.Body; len(b) >= 4; {
				id, count := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
				if count == 0 {
					withdrawn = append(withdrawn, id)
				} else {
					defined[id] = binary.BigEndian.Uint16(b[4:])
				}
				b = b[4+4*count:]
			}
		}
	}
	require.Len(t, defined, 2, "one downstream id per session")
	require.Len(t, withdrawn, 1)
	assert.Equal(t, addrsLayout.Fields[0].ID, defined[withdrawn[0]], "the ended session's template is withdrawn")

	// tshark decodes every record with its own layout: as many source
	// addresses as the one session sent, as many byte counters as the other.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-r", files[0], "-T", "fields", "-E", "aggregator=;", "-e", "cflow.srcaddr", "-e", "cflow.octets", "-e", "_ws.malformed").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Logf("tshark: %s", ee.Stderr)
	}
	require.NoError(t, err)
	var srcaddrs, octets int
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(l, "\t")
		require.Len(t, f, 3)
		if f[0] != "" {
			srcaddrs += len(strings.Split(f[0], ";"))
		}
		if f[1] != "" {
			octets += len(strings.Split(f[1], ";"))
		}
		assert.Empty(t, f[2], "malformed frame")
	}
	assert.Equal(t, sessionRecords, srcaddrs, "tshark: records of the addresses session")
	assert.Equal(t, sessionRecords, octets, "tshark: records of the counters session")
}
