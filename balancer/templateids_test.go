package balancer

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// When every template id of a domain is held by other live sessions, a new
// session's template keeps its own id (shared, as before ids were given out):
// counted and logged, once per interval.
func TestTemplateIDsExhausted(t *testing.T) {
	var logs bytes.Buffer
	r := &Receiver{cfg: config.Receiver{Mode: config.All}, opts: Options{Now: time.Now}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	r.m = newReceiverMetrics(metrics.NewSet(), labelsFor("fullflow", 0))
	out := &countingOutput{seq: forward.NewSequencer()}
	r.outputs = []output{out}
	holder := newSession(netip.MustParseAddrPort("127.0.0.1:1"), 0)
	late := newSession(netip.MustParseAddrPort("127.0.0.1:2"), 0)
	r.sessions = map[*session]gnet.Conn{holder: nil, late: nil}
	for id := int(ipfix.MinDataSetID); id <= 0xffff; id++ {
		r.mapID(holder, 0, uint16(id), false)
	}
	require.Zero(t, holder.remapped)

	var msgs [][]byte
	enc := ipfix.NewEncoder(0, 1400)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, bytes.Clone(m)) })
	enc.AddTemplate(ipfix.NewTemplate(300, []ipfix.FieldSpecifier{{ID: 1, Length: 8}}))
	require.NoError(t, enc.AppendRecord(300, ipfix.AppendUint(nil, 7, 8)))
	enc.Flush()
	require.Len(t, msgs, 1)
	r.dispatch(late, msgs[0])
	r.dispatch(late, msgs[0]) // mapped already: not counted again
	assert.Equal(t, 2, out.messages, "forwarded all the same")
	assert.Equal(t, uint64(1), r.m.templateIDsExhausted.Get())
	assert.Equal(t, 1, strings.Count(logs.String(), `msg="no free template id downstream, sharing the exporter's"`))

	// The holder ends: its ids are free for the next session.
	r.endSession(holder)
	next := newSession(netip.MustParseAddrPort("127.0.0.1:3"), 0)
	r.sessions[next] = nil
	assert.Equal(t, uint16(300+1), r.mapID(next, 0, 301, false), "an id freed by a session that ended")
}
