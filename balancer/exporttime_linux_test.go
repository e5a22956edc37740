package balancer_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// hoursAgo is the export time of a replayed capture or of a DPI whose clock
// lags: hours behind ours.
var hoursAgo = uint32(time.Now().Add(-6 * time.Hour).Unix())

// oldParts is traffic in parts of one exporter session whose export time is
// hours old and goes on growing: part k starts 100 s after part k-1. The first
// part starts with the templates; later parts leave out their first message
// (the session already has the templates).
type oldParts struct {
	parts [][]byte
	want  []int // data records of each part
}

func makeOldParts(t testing.TB, parts, records int) *oldParts {
	t.Helper()
	p := &oldParts{}
	for k := range parts {
		tr := makeTraffic(t, records, 1, 1400, uint64(k*records+1))
		msgs := tr.messages
		want := tr.count
		if k > 0 {
			want -= countRecordsIn(t, tr, 0)
			msgs = msgs[1:]
		}
		var b []byte
		for i, m := range msgs {
			binary.BigEndian.PutUint32(m[4:8], hoursAgo+uint32(100*k+i/10))
			b = append(b, m...)
		}
		p.parts = append(p.parts, b)
		p.want = append(p.want, want)
	}
	return p
}

// upSeries is the subreceiver_up series of collector c for a receiver of
// receiverConfig.
func upSeries(c *testenv.Collector) string {
	return `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="` + subLabel(c) + `"}`
}

// requireNoRefusal checks that no collector refused a session or ignored a
// message for its export time.
func requireNoRefusal(t *testing.T, cs ...*testenv.Collector) {
	t.Helper()
	for _, c := range cs {
		assert.Empty(t, c.Refusals(), "collector %s refused sessions", c.Addr())
		assert.Zero(t, c.Stats().TooOld, "collector %s ignored messages too old", c.Addr())
		assert.Zero(t, c.Stats().Undecoded, "collector %s could not decode", c.Addr())
	}
}

// The templates the balancer makes up for a new subreceiver connection carry the
// export time of the exporter's last message, never ours: an exporter whose
// clock is hours behind (a replayed capture) must not see its stream refused by
// a collector as strict as IPFIXcol2 on the balancer's every (re)connection.
func TestMadeUpTemplatesKeepExportTime(t *testing.T) {
	t.Run("tcp subreceiver restarted, messages queued meanwhile", func(t *testing.T) {
		c := testenv.StartCollector(t, "tcp")
		r := startReceiver(t, receiverConfig(config.All, c))
		testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return metricValue(t, r, upSeries(c)) == 1 })
		p := makeOldParts(t, 3, 3000)
		conn, err := net.Dial("tcp", r.Addr().String())
		require.NoError(t, err)
		defer conn.Close()

		_, err = conn.Write(p.parts[0])
		require.NoError(t, err)
		require.True(t, c.WaitRecords(p.want[0], 10*time.Second))
		c.Stop()
		testenv.WaitFor(t, 5*time.Second, "subreceiver down", func() bool { return metricValue(t, r, upSeries(c)) == 0 })
		_, err = conn.Write(p.parts[1]) // queued until the collector is back
		require.NoError(t, err)
		c.Restart()
		testenv.WaitFor(t, 15*time.Second, "subreceiver back", func() bool { return metricValue(t, r, upSeries(c)) == 1 })
		_, err = conn.Write(p.parts[2])
		require.NoError(t, err)
		want := p.want[0] + p.want[1] + p.want[2]
		c.WaitRecords(want, 10*time.Second)
		requireNoRefusal(t, c)
		assert.Equal(t, want, c.Stats().Records)
	})

	t.Run("tcp subreceiver added by reload", func(t *testing.T) {
		a, b := testenv.StartCollector(t, "tcp"), testenv.StartCollector(t, "tcp")
		cfg := receiverConfig(config.All, a)
		r := startReceiver(t, cfg)
		p := makeOldParts(t, 2, 3000)
		conn, err := net.Dial("tcp", r.Addr().String())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write(p.parts[0])
		require.NoError(t, err)
		require.True(t, a.WaitRecords(p.want[0], 10*time.Second))

		require.NoError(t, r.Reconfigure(receiverConfig(config.All, a, b)))
		testenv.WaitFor(t, 5*time.Second, "new subreceiver up", func() bool { return metricValue(t, r, upSeries(b)) == 1 })
		_, err = conn.Write(p.parts[1])
		require.NoError(t, err)
		a.WaitRecords(p.want[0]+p.want[1], 10*time.Second)
		b.WaitRecords(p.want[1], 10*time.Second)
		requireNoRefusal(t, a, b)
		assert.Equal(t, p.want[0]+p.want[1], a.Stats().Records)
		assert.Equal(t, p.want[1], b.Stats().Records, "the new subreceiver gets all that follows")
	})

	t.Run("udp receiver, tcp subreceiver restarted", func(t *testing.T) {
		c := testenv.StartCollector(t, "tcp")
		r := startReceiver(t, udpReceiverConfig(config.All, c))
		testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })
		tr := makeTraffic(t, 2000, 1, 1400, 1)
		for i, m := range tr.messages {
			binary.BigEndian.PutUint32(m[4:8], hoursAgo+uint32(i))
		}
		snd := &udpSender{t: t, r: r, pace: 16}
		conn := dialUDP(t, r.Addr())
		half := len(tr.messages) / 2
		for _, m := range tr.messages[:half] {
			snd.send(conn, m)
		}
		snd.wait()
		first := 0
		for i := range half {
			first += countRecordsIn(t, tr, i)
		}
		require.True(t, c.WaitRecords(first, 10*time.Second), "the first half arrived")
		c.Stop()
		testenv.WaitFor(t, 5*time.Second, "subreceiver down", func() bool { return !subUp(t, r, c) })
		for _, m := range tr.messages[half:] { // queued until the collector is back
			snd.send(conn, m)
		}
		snd.wait()
		c.Restart()
		c.WaitRecords(tr.count, 15*time.Second)
		requireNoRefusal(t, c)
		assert.Equal(t, tr.count, c.Stats().Records)
	})

	t.Run("recording rotated by records, re-export added by reload", func(t *testing.T) {
		dir := t.TempDir()
		cfg := recordingConfig(dir, "fullflow", 10*time.Minute)
		cfg.Recording.RotateRecords = 2500
		r := startRecording(t, cfg, nil)
		e := dialExporter(t, r.Addr())
		p := makeOldParts(t, 2, 5000)
		e.send([][]byte{p.parts[0]})
		r.waitMetric(t, float64(p.want[0]), "ipfix_balancer_dump_written_records_total")

		c := testenv.StartCollector(t, "tcp")
		cfg.Recording.Export = []config.Subreceiver{{Addr: c.Addr(), Proto: config.TCP}}
		require.NoError(t, r.Reconfigure(cfg))
		testenv.WaitFor(t, 5*time.Second, "export target up", func() bool { return metricValue(t, r.Receiver, upSeries(c)) == 1 })
		e.send([][]byte{p.parts[1]})
		r.waitMetric(t, float64(p.want[0]+p.want[1]), "ipfix_balancer_dump_written_records_total")
		c.WaitRecords(p.want[1], 10*time.Second)
		r.stop()
		requireNoRefusal(t, c)
		assert.Equal(t, p.want[1], c.Stats().Records)

		dumps := closedDumps(t, dir, "fullflow")
		require.GreaterOrEqual(t, len(dumps), 4, "rotated by record count")
		for _, f := range dumps {
			msgs := readDump(t, f)
			var last uint32
			for i, m := range msgs {
				et := binary.BigEndian.Uint32(m[4:8])
				require.False(t, i > 0 && et < last, "%s: message %d: export time %d before %d", f, i, et, last)
				last = et
			}
			assert.GreaterOrEqual(t, binary.BigEndian.Uint32(msgs[0][4:8]), hoursAgo, "%s starts at the exporter's time", f)
		}
	})

	t.Run("tcp receiver, udp subreceiver", func(t *testing.T) {
		c := testenv.StartCollector(t, "udp")
		r := startReceiver(t, receiverConfig(config.All, c))
		testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return metricValue(t, r, upSeries(c)) == 1 })
		p := makeOldParts(t, 1, 2000)
		sendTCP(t, r.Addr(), p.parts[0], 64<<10)
		c.WaitRecords(p.want[0], 10*time.Second)
		requireNoRefusal(t, c)
		assert.Equal(t, p.want[0], c.Stats().Records)
	})
}
