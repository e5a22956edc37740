package balancer_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func TestRoundRobin(t *testing.T) {
	for _, subs := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d subreceivers", subs), func(t *testing.T) {
			var cs []*testenv.Collector
			for range subs {
				cs = append(cs, testenv.StartCollector(t, "tcp"))
			}
			r := startReceiver(t, receiverConfig(config.RoundRobin, cs...))
			testenv.WaitFor(t, 5*time.Second, "subreceivers up", func() bool {
				for _, c := range cs {
					if metricValue(t, r, `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="`+c.Addr()+`"}`) != 1 {
						return false
					}
				}
				return true
			})
			tr := makeTraffic(t, 30000, 7, 1400, 1)
			sendTCP(t, r.Addr(), tr.stream(), 3001) // odd chunks split messages anywhere

			testenv.WaitFor(t, 10*time.Second, "all records", func() bool { return sumRecords(cs) >= tr.count })
			assert.Equal(t, tr.records, union(cs...), "union of what subreceivers decoded must equal what was sent")
			dataMessages := len(tr.messages)
			for i, c := range cs {
				st := c.Stats()
				assert.Zero(t, st.Undecoded, "collector %d could not decode some data", i)
				assert.Zero(t, st.SequenceGaps, "collector %d saw sequence gaps", i)
				assert.Zero(t, st.OutOfOrder, "collector %d saw messages out of order", i)
				// Each gets its share of data messages (±1), plus the template copies.
				assert.InDelta(t, dataMessages/subs, st.Messages-1, 2, "collector %d share", i)
			}
			assert.Equal(t, float64(len(tr.messages)), metricValue(t, r, `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`))
			assert.Equal(t, float64(tr.count), metricValue(t, r, `ipfix_balancer_received_records_total{stream="fullflow",dpi="0"}`))
			assert.Zero(t, metricValue(t, r, `ipfix_balancer_dropped_messages_total{stream="fullflow",dpi="0",reason="no_subreceiver"}`))
		})
	}
}

func sumRecords(cs []*testenv.Collector) int {
	n := 0
	for _, c := range cs {
		n += c.Stats().Records
	}
	return n
}

func TestAll(t *testing.T) {
	a, b := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")
	r := startReceiver(t, receiverConfig(config.All, a, b))
	tr := makeTraffic(t, 20000, 1, 8000, 1)
	sendTCP(t, r.Addr(), tr.stream(), 65536)
	for _, c := range []*testenv.Collector{a, b} {
		require.True(t, c.WaitRecords(tr.count, 10*time.Second), "collector %s got %d of %d records", c.Addr(), c.Stats().Records, tr.count)
		assert.Equal(t, tr.records, c.Records())
		assert.Zero(t, c.Stats().Undecoded)
		assert.Zero(t, c.Stats().SequenceGaps)
	}
}

// In All mode each subreceiver gets its own gap-free numbering. One that was down
// and dropped messages comes back behind the other: the first output numbers a
// message in place, the second then copies the header to write its own number.
func TestAllNumbersEachSubreceiver(t *testing.T) {
	a, b := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")
	a.Stop()
	cfg := receiverConfig(config.All, a, b)
	cfg.QueueBytes = 64 << 10
	r := startReceiver(t, cfg)
	conn, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()

	first := makeTraffic(t, 20000, 1, 1400, 1)
	_, err = conn.Write(first.stream())
	require.NoError(t, err)
	require.True(t, b.WaitRecords(first.count, 10*time.Second), "b got %d of %d", b.Stats().Records, first.count)
	dropsA := `ipfix_balancer_dropped_messages_total{stream="fullflow",dpi="0",subreceiver="` + a.Addr() + `",reason="subreceiver_down"}`
	require.Positive(t, metricValue(t, r, dropsA), "a must have dropped while down")

	a.Restart()
	upA := `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="` + a.Addr() + `"}`
	testenv.WaitFor(t, 10*time.Second, "a up", func() bool { return metricValue(t, r, upA) == 1 })
	sentA := `ipfix_balancer_sent_records_total{stream="fullflow",dpi="0",subreceiver="` + a.Addr() + `"}`
	testenv.WaitFor(t, 10*time.Second, "a got what was queued", func() bool {
		n := metricValue(t, r, sentA)
		return n > 0 && float64(a.Stats().Records) == n
	})
	queued := a.Stats().Records
	second := makeTraffic(t, 20000, 1, 1400, 100001)
	_, err = conn.Write(second.stream()[len(second.messages[0]):]) // the session has the templates
	require.NoError(t, err)
	more := second.count - countRecordsIn(t, second, 0)
	require.True(t, b.WaitRecords(first.count+more, 10*time.Second), "b got %d of %d", b.Stats().Records, first.count+more)
	require.True(t, a.WaitRecords(queued+more, 10*time.Second), "a got %d of %d", a.Stats().Records, queued+more)

	assert.Positive(t, queued, "a gets what was queued while it was down")
	assert.Less(t, queued, first.count)
	for name, c := range map[string]*testenv.Collector{"a": a, "b": b} {
		assert.Zero(t, c.Stats().SequenceGaps, "%s saw sequence gaps", name)
		assert.Zero(t, c.Stats().Undecoded, name)
	}
	assert.Equal(t, first.count+more, b.Stats().Records)
}

// A subreceiver that starts after the balancer gets everything: what arrives
// while the first connection is being made waits in its queue.
func TestSubreceiverLateStartLosesNothing(t *testing.T) {
	late := testenv.StartCollector(t, "tcp")
	late.Stop()
	r := startReceiver(t, receiverConfig(config.All, late))
	tr := makeTraffic(t, 5000, 1, 1400, 1)
	sendTCP(t, r.Addr(), tr.stream(), 1<<20)
	testenv.WaitFor(t, 5*time.Second, "messages queued", func() bool {
		return metricValue(t, r, `ipfix_balancer_received_records_total{stream="fullflow",dpi="0"}`) == float64(tr.count)
	})
	late.Restart()
	require.True(t, late.WaitRecords(tr.count, 15*time.Second), "got %d of %d", late.Stats().Records, tr.count)
	assert.Equal(t, tr.records, late.Records())
	assert.Zero(t, late.Stats().Undecoded)
}

// A subreceiver killed mid-stream: RoundRobin routes around it, and after it comes
// back it gets the templates before any data and decodes all it gets.
func TestSubreceiverKilledAndRestarted(t *testing.T) {
	a, b := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")
	r := startReceiver(t, receiverConfig(config.RoundRobin, a, b))
	upB := `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="` + b.Addr() + `"}`
	testenv.WaitFor(t, 5*time.Second, "b up", func() bool { return metricValue(t, r, upB) == 1 })

	conn, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	first := makeTraffic(t, 10000, 1, 1400, 1)
	_, err = conn.Write(first.stream())
	require.NoError(t, err)
	testenv.WaitFor(t, 10*time.Second, "first part", func() bool { return a.Stats().Records+b.Stats().Records >= first.count })

	b.Stop()
	testenv.WaitFor(t, 5*time.Second, "b down", func() bool { return metricValue(t, r, upB) == 0 })
	// While b is down every message goes to a.
	second := makeTraffic(t, 10000, 1, 1400, 100001)
	_, err = conn.Write(second.stream()[len(second.messages[0]):]) // session already has templates
	require.NoError(t, err)
	want := first.count + second.count - countRecordsIn(t, second, 0)
	testenv.WaitFor(t, 10*time.Second, "second part on a", func() bool { return a.Stats().Records+b.Stats().Records >= want })

	b.Restart()
	testenv.WaitFor(t, 10*time.Second, "b back", func() bool { return metricValue(t, r, upB) == 1 })
	third := makeTraffic(t, 10000, 1, 1400, 200001)
	_, err = conn.Write(third.stream()[len(third.messages[0]):])
	require.NoError(t, err)
	want += third.count - countRecordsIn(t, third, 0)
	testenv.WaitFor(t, 10*time.Second, "third part", func() bool { return a.Stats().Records+b.Stats().Records >= want })

	assert.Zero(t, b.Stats().Undecoded, "after reconnect b must get templates before data")
	assert.Zero(t, a.Stats().Undecoded)
	assert.Equal(t, 2, b.Stats().Sessions)
	assert.Equal(t, want, a.Stats().Records+b.Stats().Records, "nothing lost: b was idle when killed")
	assert.Equal(t, float64(1), metricValue(t, r, `ipfix_balancer_subreceiver_reconnects_total{stream="fullflow",dpi="0",subreceiver="`+b.Addr()+`"}`))
}

// countRecordsIn counts the data records of message i of tr (message 0 carries
// the templates, so it decodes alone).
func countRecordsIn(t testing.TB, tr *traffic, i int) int {
	t.Helper()
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	require.NoError(t, dec.Decode(tr.messages[0], time.Now(), func(*ipfix.Record) error { return nil }))
	n := 0
	require.NoError(t, dec.Decode(tr.messages[i], time.Now(), func(*ipfix.Record) error { n++; return nil }))
	return n
}

// A subreceiver that accepts and never reads: memory stays bounded by its
// high-water mark and the healthy one keeps getting everything.
func TestStalledSubreceiver(t *testing.T) {
	healthy := testenv.StartCollector(t, "tcp")
	stalled := testenv.StartCollector(t, "tcp", testenv.Stalled())
	cfg := receiverConfig(config.All, healthy, stalled)
	cfg.QueueBytes = 4 << 20
	r := startReceiver(t, cfg)

	tr := makeTraffic(t, 20000, 1, 16000, 1)
	data := tr.stream()
	conn, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	var peak uint64
	const rounds = 60 // ~60 × 3 MB through the balancer
	first := countRecordsIn(t, tr, 0)
	for i := range rounds {
		chunk := data
		if i > 0 {
			chunk = data[len(tr.messages[0]):] // the session has the templates
		}
		_, err = conn.Write(chunk)
		require.NoError(t, err)
		// Keep within what the (Go, decoding) test collector can take: the point is
		// that the stalled one does not slow it, not the collector's own speed.
		sent := (i+1)*tr.count - i*first
		require.True(t, healthy.WaitRecords(sent-tr.count, 20*time.Second), "round %d: healthy at %d of %d", i, healthy.Stats().Records, sent)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	stalledQueue := `ipfix_balancer_queue_bytes{stream="fullflow",dpi="0",subreceiver="` + stalled.Addr() + `"}`
	testenv.WaitFor(t, 10*time.Second, "stalled drops", func() bool {
		return metricValue(t, r, `ipfix_balancer_dropped_messages_total{stream="fullflow",dpi="0",subreceiver="`+stalled.Addr()+`",reason="queue_full"}`) > 0
	})
	assert.LessOrEqual(t, metricValue(t, r, stalledQueue), float64(cfg.QueueBytes))
	assert.Less(t, peak, uint64(256<<20), "heap must stay bounded by the high-water mark, not by what was sent")
	want := rounds*tr.count - (rounds-1)*first
	require.True(t, healthy.WaitRecords(want, 20*time.Second), "healthy got %d of %d", healthy.Stats().Records, want)
	assert.Equal(t, want, healthy.Stats().Records)
	assert.Zero(t, healthy.Stats().Undecoded)
	assert.Zero(t, metricValue(t, r, `ipfix_balancer_dropped_messages_total{stream="fullflow",dpi="0",subreceiver="`+healthy.Addr()+`",reason="queue_full"}`))
}

// Malformed input closes that exporter's connection and is counted; another
// receiver is not affected.
func TestMalformedInputClosesConnection(t *testing.T) {
	c1, c2 := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")
	r1 := startReceiver(t, receiverConfig(config.All, c1))
	cfg2 := receiverConfig(config.All, c2)
	cfg2.Stream = "clickstream"
	r2 := startReceiver(t, cfg2)

	conn, err := net.Dial("tcp", r1.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	bad := []byte{0, 9, 0, 40} // version 9 where 10 must be: the stream is out of sync
	bad = append(bad, make([]byte, 36)...)
	_, err = conn.Write(bad)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err, "the balancer must close a stream that lost framing")
	assert.NotContains(t, err.Error(), "timeout")
	assert.Equal(t, float64(1), metricValue(t, r1, `ipfix_balancer_parse_errors_total{stream="fullflow",dpi="0",kind="version"}`))

	tr := makeTraffic(t, 3000, 1, 1400, 1)
	sendTCP(t, r2.Addr(), tr.stream(), 4096)
	require.True(t, c2.WaitRecords(tr.count, 10*time.Second))
	assert.Equal(t, tr.records, c2.Records())
	assert.Zero(t, c1.Stats().Records)
}

// The loop pins its own thread; verified by the kernel's view of every thread.
func TestPinning(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	cfg := receiverConfig(config.All, c)
	cpu := pinToLastCPU(t, &cfg)
	startReceiver(t, cfg)
	assert.True(t, threadPinnedTo(t, cpu), "no thread of this process is pinned to CPU %s", cpu)
}

// pinToLastCPU sets cfg to pin its loop to this machine's last CPU, returned as
// it appears in Cpus_allowed_list.
func pinToLastCPU(t testing.TB, cfg *config.Receiver) string {
	t.Helper()
	cpu := fmt.Sprint(runtime.NumCPU() - 1)
	set, err := affinity.Parse(cpu)
	require.NoError(t, err)
	cfg.CPU = set
	return cpu
}

func TestPinningMissingCPURunsUnpinned(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	cfg := receiverConfig(config.All, c)
	set, err := affinity.Parse("1000")
	require.NoError(t, err)
	cfg.CPU = set
	r := startReceiver(t, cfg)
	tr := makeTraffic(t, 100, 1, 1400, 1)
	sendTCP(t, r.Addr(), tr.stream(), 1<<16)
	require.True(t, c.WaitRecords(tr.count, 5*time.Second))
}

func threadPinnedTo(t testing.TB, cpus string) bool {
	t.Helper()
	if runtime.NumCPU() == 1 {
		return true // every thread is on CPU 0 already
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	require.NoError(t, err)
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && strings.TrimSpace(v) == cpus {
				return true
			}
		}
	}
	return false
}
