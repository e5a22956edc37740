package balancer_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// idEncoder encodes records of one template whose first field is a unique id
// (see testenv.CountByID) into messages of at most size bytes.
type idEncoder struct {
	enc  *ipfix.Encoder
	tmpl *ipfix.Template
	out  [][]byte
}

func newIDEncoder(odid uint32, size int, tmpl *ipfix.Template) *idEncoder {
	e := &idEncoder{enc: ipfix.NewEncoder(odid, size), tmpl: tmpl}
	e.enc.SetExportTime(1_700_000_000)
	e.enc.SetOutput(func(m []byte) { e.out = append(e.out, bytes.Clone(m)) })
	e.enc.AddTemplate(tmpl)
	return e
}

// messages encodes the records of ids first..first+n-1 and returns the messages
// closed since the last call (the first call's first message carries the template).
func (e *idEncoder) messages(t testing.TB, first uint64, n int) [][]byte {
	t.Helper()
	rec := make([]byte, 0, 64)
	for id := first; id < first+uint64(n); id++ {
		rec = ipfix.AppendUint(rec[:0], id, 8)
		for _, f := range e.tmpl.Fields[1:] {
			rec = ipfix.AppendUint(rec, id, int(f.Length))
		}
		require.NoError(t, e.enc.AppendRecord(e.tmpl.ID, rec))
	}
	e.enc.Flush()
	out := e.out
	e.out = nil
	return out
}

func writeAll(t testing.TB, c net.Conn, msgs [][]byte) {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
	}
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(30*time.Second)))
	_, err := c.Write(b)
	require.NoError(t, err)
}

// A TCP subreceiver that stops reading goes over its high-water mark and misses
// data, and with it a message that defines a new template. Resumed, it must
// still decode everything it is sent afterwards: a template message is never
// lost to the mark (issue 11 item 2). Both kinds of TCP subreceiver: on a TCP
// receiver's loop, and a UDP receiver's (with its writer goroutine).
func TestCongestedSubreceiverDecodesAfterResume(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto config.Proto // the receiver's
		mode  config.Mode
	}{
		{"tcp/RoundRobin", config.TCP, config.RoundRobin},
		{"tcp/All", config.TCP, config.All},
		{"udp/RoundRobin", config.UDP, config.RoundRobin},
		{"udp/All", config.UDP, config.All},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.StartCollector(t, "tcp", testenv.CountByID())
			cfg := receiverConfig(tc.mode, c)
			cfg.QueueBytes = 256 << 10
			if tc.proto == config.UDP {
				cfg.Proto = config.UDP
				cfg.UDPReadBuffer = 8 << 20
				cfg.TemplateLifetime = 30 * time.Minute
			}
			r := startReceiver(t, cfg)
			labels := `stream="fullflow",dpi="0",subreceiver="` + c.Addr() + `"`
			testenv.WaitFor(t, 10*time.Second, "subreceiver up", func() bool {
				return metricValue(t, r, `ipfix_balancer_subreceiver_up{`+labels+`}`) == 1
			})
			received := func() float64 {
				return metricValue(t, r, `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`)
			}
			dropped := func() float64 {
				return metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+labels+`,reason="queue_full"}`) +
					metricValue(t, r, `ipfix_balancer_dropped_messages_total{stream="fullflow",dpi="0",reason="no_subreceiver"}`)
			}

			// Data messages of about 1000 bytes; the new template's message is
			// larger, so once data is dropped at the mark it is dropped too.
			a := newIDEncoder(7, 1000, ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}, {ID: 8, Length: 4}}))
			b := newIDEncoder(7, 1400, ipfix.NewTemplate(300, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 12, Length: 4}, {ID: 7, Length: 2}, {ID: 11, Length: 2}}))
			network := "tcp"
			if tc.proto == config.UDP {
				network = "udp"
			}
			exp, err := net.Dial(network, r.Addr().String())
			require.NoError(t, err)
			defer exp.Close()
			sent := 0
			wait := func() {
				testenv.WaitFor(t, 30*time.Second, "the receiver to read what was sent", func() bool { return received() == float64(sent) })
			}
			send := func(msgs [][]byte) {
				if tc.proto == config.TCP {
					writeAll(t, exp, msgs)
					sent += len(msgs)
					wait()
					return
				}
				// A datagram each, paced so the socket's read buffer never fills.
				for _, m := range msgs {
					_, err := exp.Write(m)
					require.NoError(t, err)
					if sent++; sent%256 == 0 {
						wait()
					}
				}
				wait()
			}
			next := uint64(1)
			send(a.messages(t, next, 49))
			next += 49
			require.True(t, c.WaitRecords(49, 10*time.Second), "the first records must arrive")

			c.Pause()
			start := time.Now()
			for dropped() == 0 {
				require.Less(t, next, uint64(4_000_000), "no drop after 80 MB to a paused collector")
				require.Less(t, time.Since(start), time.Minute, "no drop within a minute")
				send(a.messages(t, next, 49*200))
				next += 49 * 200
			}
			before := dropped()
			first := b.messages(t, 5_000_000, 80)
			require.Len(t, first, 1)
			require.Greater(t, len(first[0]), 1000)
			send(first)
			require.Greater(t, dropped(), before, "the message defining the new template must meet the mark for this test to mean anything")

			c.Resume()
			// Once data of the old template gets through again, the way is clear.
			marker := next + 1_000_000
			testenv.WaitFor(t, 60*time.Second, "data to get through after resume", func() bool {
				send(a.messages(t, marker, 1))
				ids := c.IDCounts()
				for id := next + 1_000_000; id <= marker; id++ {
					if id < uint64(len(ids)) && ids[id] > 0 {
						return true
					}
				}
				marker++
				time.Sleep(20 * time.Millisecond)
				return false
			})
			after := b.messages(t, 6_000_000, 400)
			send(after)
			ok := func() bool {
				ids := c.IDCounts()
				for id := uint64(6_000_000); id < 6_000_400; id++ {
					if id >= uint64(len(ids)) || ids[id] == 0 {
						return false
					}
				}
				return true
			}
			deadline := time.Now().Add(20 * time.Second)
			for !ok() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			st := c.Stats()
			assert.Zero(t, st.Undecoded, "data sets the collector could not decode after resume")
			assert.True(t, ok(), "records of the new template sent after resume must all be decoded")
		})
	}
}
