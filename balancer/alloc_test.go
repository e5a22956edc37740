package balancer

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// countingOutput takes every message; it stands in for a subreceiver so the test
// measures dispatch alone.
type countingOutput struct {
	seq      forward.Sequencer
	hdr      [16]byte
	messages int
}

func (o *countingOutput) Available() bool   { return true }
func (o *countingOutput) Flush()            {}
func (o *countingOutput) Start()            {}
func (o *countingOutput) Stop()             {}
func (o *countingOutput) PendingBytes() int { return 0 }
func (o *countingOutput) Name() string      { return "counting" }
func (o *countingOutput) Send(m *forward.Message) {
	copy(o.hdr[:], m.Bytes[:16])
	o.seq.Put(o.hdr[:], m.ODID, m.Records)
	o.messages++
}

// Forwarding a message in steady state allocates nothing (Go's net.TestAllocs).
func TestDispatchAllocs(t *testing.T) {
	for _, mode := range []config.Mode{config.RoundRobin, config.All} {
		t.Run(mode.String(), func(t *testing.T) {
			r := &Receiver{cfg: config.Receiver{Mode: mode}, opts: Options{Now: time.Now}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			r.m = newReceiverMetrics(metrics.NewSet(), labelsFor("fullflow", 0))
			a, b := &countingOutput{seq: forward.NewSequencer()}, &countingOutput{seq: forward.NewSequencer()}
			r.outputs = []output{a, b}
			s := newSession(netip.MustParseAddrPort("127.0.0.1:1"), 0)
			r.sessions = map[*session]gnet.Conn{s: nil}

			tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 8, Length: 4}, {ID: 1002, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI}})
			var msgs [][]byte
			enc := ipfix.NewEncoder(1, 1400)
			enc.SetOutput(func(m []byte) { msgs = append(msgs, append([]byte(nil), m...)) })
			enc.AddTemplate(tmpl)
			rec := make([]byte, 0, 64)
			for i := range 200 {
				rec = ipfix.AppendUint(rec[:0], uint64(i), 8)
				rec = ipfix.AppendUint(rec, 0x0a000001, 4)
				rec = ipfix.AppendVarLen(rec, []byte("subscriber"))
				require.NoError(t, enc.AppendRecord(256, rec))
			}
			enc.Flush()
			require.Greater(t, len(msgs), 2)
			r.dispatch(s, msgs[0]) // learns the template
			r.flush()
			data := msgs[1]
			allocs := testing.AllocsPerRun(1000, func() {
				r.dispatch(s, data)
				r.flush()
			})
			require.Zero(t, allocs, "dispatching one message must not allocate")
			// Two data messages in a row are summarized together (onTraffic).
			_, _, paired := ipfix.SummarizePair(s.templates, 1, msgs[1], 1, msgs[2])
			require.True(t, paired)
			allocs = testing.AllocsPerRun(1000, func() {
				r.dispatchPair(s, msgs[1], msgs[2])
				r.flush()
			})
			require.Zero(t, allocs, "dispatching a pair of messages must not allocate")
			require.Greater(t, a.messages+b.messages, 1000)
		})
	}
}
