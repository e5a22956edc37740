package balancer_test

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// spoolConfig is receiverConfig with a spool under a temp dir, its limits as
// the shipped configuration has them, and the smallest queue.
func spoolConfig(t testing.TB, mode config.Mode, subs ...*testenv.Collector) config.Receiver {
	cfg := receiverConfig(mode, subs...)
	cfg.QueueBytes = 64 << 10
	cfg.Spool = config.Spool{Dir: t.TempDir(), MaxBytes: 1 << 30, MinFreeBytes: 256 << 20, Drop: "oldest"}
	return cfg
}

// checkOnce asserts the collectors together decoded ids first..first+n-1
// exactly once each (all: each collector alone did).
func checkOnce(t *testing.T, first uint64, n int, cs ...*testenv.Collector) {
	t.Helper()
	counts := make([]int, n)
	for _, c := range cs {
		ids := c.IDCounts()
		for i := range counts {
			if id := first + uint64(i); id < uint64(len(ids)) {
				counts[i] += int(ids[id])
			}
		}
	}
	missing, twice := 0, 0
	for _, v := range counts {
		if v == 0 {
			missing++
		}
		if v > 1 {
			twice++
		}
	}
	assert.Zero(t, missing, "records never delivered")
	assert.Zero(t, twice, "records delivered more than once")
}

// waitIDs waits until the collectors together decoded n records from first.
func waitIDs(t *testing.T, timeout time.Duration, first uint64, n int, cs ...*testenv.Collector) {
	t.Helper()
	testenv.WaitFor(t, timeout, "every record at the collectors", func() bool {
		got := 0
		for _, c := range cs {
			ids := c.IDCounts()
			for id := first; id < first+uint64(n) && id < uint64(len(ids)); id++ {
				got += int(ids[id])
			}
		}
		return got >= n
	})
}

// cleanStats asserts what a strict collector reports is clean.
func cleanStats(t *testing.T, c *testenv.Collector) {
	t.Helper()
	st := c.Stats()
	assert.Zero(t, st.Undecoded, "undecoded data sets")
	assert.Zero(t, st.SequenceGaps, "sequence gaps")
	assert.Zero(t, st.OutOfOrder, "messages numbered backwards")
	assert.Zero(t, st.Refused, "sessions refused (export time in history)")
	assert.Empty(t, c.Refusals())
}

// segmentsIn lists the spool segments under root.
func segmentsIn(t testing.TB, root string) []string {
	var out []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, perr := dump.ParseSegment(d.Name()); perr == nil {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

var spoolTemplate = ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}, {ID: 8, Length: 4}})

// All mode to two collectors; one is stopped (then restarted) or paused
// (then resumed) while the exporter sends far more than its queue holds:
// afterwards each collector holds every record exactly once, decodable, with
// gap-free sequence numbers, and the spool is empty, its segments gone.
func TestSpoolAllCollectorBack(t *testing.T) {
	for _, tc := range []struct {
		name       string
		down, back func(c *testenv.Collector)
	}{
		{"stopped", (*testenv.Collector).Stop, (*testenv.Collector).Restart},
		{"paused", (*testenv.Collector).Pause, (*testenv.Collector).Resume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c1 := testenv.StartCollector(t, "tcp", testenv.CountByID())
			c2 := testenv.StartCollector(t, "tcp", testenv.CountByID())
			cfg := spoolConfig(t, config.All, c1, c2)
			r, stop := runReceiver(t, cfg, balancer.Options{ShutdownTimeout: 5 * time.Second})
			l2 := `stream="fullflow",dpi="0",subreceiver="` + c2.Addr() + `"`
			for _, c := range []*testenv.Collector{c1, c2} {
				testenv.WaitFor(t, 10*time.Second, "subreceiver up", func() bool {
					return metricValue(t, r, `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="`+c.Addr()+`"}`) == 1
				})
			}
			exp, err := net.Dial("tcp", r.Addr().String())
			require.NoError(t, err)
			defer exp.Close()
			enc := newIDEncoder(7, 1000, spoolTemplate)
			const part = 20_000
			writeAll(t, exp, enc.messages(t, 0, part))
			waitIDs(t, 30*time.Second, 0, part, c2)

			tc.down(c2)
			if tc.name == "stopped" {
				testenv.WaitFor(t, 10*time.Second, "subreceiver down", func() bool {
					return metricValue(t, r, `ipfix_balancer_subreceiver_up{`+l2+`}`) == 0
				})
			}
			// Far over the 64 KiB queue (and, paused, the socket buffers), 40 k
			// records (about 2.4 MB) at a time, until the spool took some more.
			next := uint64(part)
			spooled := func() float64 {
				return metricValue(t, r, `ipfix_balancer_spool_spooled_messages_total{`+l2+`}`)
			}
			for i := 0; i < 2 || spooled() < 1000; i++ {
				require.Less(t, i, 40, "the spool took nothing after 100 MB")
				writeAll(t, exp, enc.messages(t, next, 2*part))
				next += 2 * part
				waitIDs(t, 30*time.Second, 0, int(next), c1)
			}

			tc.back(c2)
			// Live data while the replay runs.
			writeAll(t, exp, enc.messages(t, next, part))
			total := int(next) + part
			waitIDs(t, 60*time.Second, 0, total, c2)
			waitIDs(t, 30*time.Second, 0, total, c1)
			for _, c := range []*testenv.Collector{c1, c2} {
				checkOnce(t, 0, total, c)
				cleanStats(t, c)
			}
			for _, reason := range []string{"queue_full", "subreceiver_down", "connection_lost"} {
				assert.Zero(t, metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+l2+`,reason="`+reason+`"}`), reason)
			}
			testenv.WaitFor(t, 20*time.Second, "the spool to drain", func() bool {
				return metricValue(t, r, `ipfix_balancer_spool_replaying{`+l2+`}`) == 0
			})
			assert.Equal(t, metricValue(t, r, `ipfix_balancer_spool_spooled_messages_total{`+l2+`}`),
				metricValue(t, r, `ipfix_balancer_spool_replayed_messages_total{`+l2+`}`))
			_ = exp.Close()
			stop()
			assert.Empty(t, segmentsIn(t, cfg.Spool.Dir), "segments left after the replay")
		})
	}
}

// withdrawal is a template withdrawal message (RFC 7011 §8.1) of template id
// of domain odid.
func withdrawal(odid uint32, id uint16) []byte {
	m := make([]byte, ipfix.HeaderLen, ipfix.HeaderLen+8)
	ipfix.PutHeader(m, ipfix.Header{Version: ipfix.Version, Length: ipfix.HeaderLen + 8, ExportTime: 1_700_000_000, ObservationDomainID: odid})
	m = binary.BigEndian.AppendUint16(m, ipfix.TemplateSetID)
	m = binary.BigEndian.AppendUint16(m, 8)
	m = binary.BigEndian.AppendUint16(m, id)
	return binary.BigEndian.AppendUint16(m, 0)
}

// fingerprints decodes msgs as a collector would and returns the multiset of
// their records.
func fingerprints(t testing.TB, msgs [][]byte) map[string]int {
	t.Helper()
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	out := make(map[string]int)
	for _, m := range msgs {
		require.NoError(t, dec.Decode(m, time.Now(), func(r *ipfix.Record) error {
			out[testenv.Fingerprint(r)]++
			return nil
		}))
	}
	return out
}

// The exporter withdraws and redefines its template while a collector is
// down: back, the collector decodes every replayed record with the layout it
// was exported with, and the live ones after with the new one.
func TestSpoolTemplateChangedWhileDown(t *testing.T) {
	c1 := testenv.StartCollector(t, "tcp")
	c2 := testenv.StartCollector(t, "tcp")
	cfg := spoolConfig(t, config.All, c1, c2)
	r, _ := runReceiver(t, cfg, balancer.Options{ShutdownTimeout: 5 * time.Second})
	l2 := `stream="fullflow",dpi="0",subreceiver="` + c2.Addr() + `"`
	for _, c := range []*testenv.Collector{c1, c2} {
		testenv.WaitFor(t, 10*time.Second, "subreceiver up", func() bool {
			return metricValue(t, r, `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="`+c.Addr()+`"}`) == 1
		})
	}
	exp, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer exp.Close()
	a := newIDEncoder(7, 1000, spoolTemplate)
	b := newIDEncoder(7, 1000, ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 12, Length: 4}, {ID: 7, Length: 2}, {ID: 11, Length: 2}, {ID: 4, Length: 1}}))
	var sent [][]byte
	send := func(msgs [][]byte) {
		writeAll(t, exp, msgs)
		sent = append(sent, msgs...)
	}
	waitAll := func(c *testenv.Collector) {
		want := 0
		for _, v := range fingerprints(t, sent) {
			want += v
		}
		require.True(t, c.WaitRecords(want, 60*time.Second), "collector got %d of %d records", c.Stats().Records, want)
	}

	send(a.messages(t, 0, 5000))
	waitAll(c2)
	c2.Stop()
	testenv.WaitFor(t, 10*time.Second, "subreceiver down", func() bool {
		return metricValue(t, r, `ipfix_balancer_subreceiver_up{`+l2+`}`) == 0
	})
	send(a.messages(t, 5000, 40_000))
	send([][]byte{withdrawal(7, 256)})
	send(b.messages(t, 100_000, 40_000))
	waitAll(c1)
	require.Greater(t, metricValue(t, r, `ipfix_balancer_spool_spooled_messages_total{`+l2+`}`), 0.0)
	c2.Restart()
	send(b.messages(t, 200_000, 20_000))
	waitAll(c2)
	waitAll(c1)
	want := fingerprints(t, sent)
	for _, c := range []*testenv.Collector{c1, c2} {
		got := c.Records()
		missing, extra := 0, 0
		for k, v := range want {
			if got[k] < v {
				missing += v - got[k]
			}
		}
		for k, v := range got {
			if v > want[k] {
				extra += v - want[k]
			}
		}
		assert.Zero(t, missing, "records not decoded as exported (%s)", c.Addr())
		assert.Zero(t, extra, "records decoded that were not exported (%s)", c.Addr())
		cleanStats(t, c)
	}
}
