package balancer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// A UDP exporter redefines template 256 without withdrawing it, in the message
// that carries the first data of the new layout (RFC 7011 §8.4 lets it over
// UDP). Read with the old, variable-length layout that data overruns its set;
// read with the new one it is fine: the message is forwarded, not dropped as
// malformed (issue 11 item 6).
func TestUDPTemplateRedefinedInTheSameMessage(t *testing.T) {
	c := testenv.StartCollector(t, "tcp", testenv.CountByID())
	r := startReceiver(t, udpReceiverConfig(config.All, c))
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })

	old := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 82, Length: ipfix.VariableLength}})
	a := newIDEncoder(1, 1400, old)
	rec := ipfix.AppendUint(nil, 1, 8)
	rec = ipfix.AppendVarLen(rec, []byte("eth0"))
	require.NoError(t, a.enc.AppendRecord(256, rec))
	a.enc.Flush()
	require.Len(t, a.out, 1)

	// The new layout: id, then a 4-byte field whose first octet, read as the old
	// layout's length octet, runs past the set.
	b := newIDEncoder(1, 1400, ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 12, Length: 4}}))
	for id := uint64(2); id < 12; id++ {
		rec = ipfix.AppendUint(rec[:0], id, 8)
		rec = ipfix.AppendUint(rec, 0xc8000000|id, 4)
		require.NoError(t, b.enc.AppendRecord(256, rec))
	}
	b.enc.Flush()
	require.Len(t, b.out, 1)

	conn := dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 1}
	snd.send(conn, a.out[0])
	require.True(t, c.WaitRecords(1, 5*time.Second), "the first record")
	_, err := conn.Write(b.out[0])
	require.NoError(t, err)
	testenv.WaitFor(t, 5*time.Second, "the receiver to take the message", func() bool {
		return metricValue(t, r, `ipfix_balancer_received_messages_total{`+udpLabels+`}`)+
			metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+udpLabels+`,reason="malformed"}`) == 2
	})
	assert.Zero(t, metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+udpLabels+`,reason="malformed"}`))
	assert.True(t, c.WaitRecords(11, 5*time.Second), "records of the new layout: got %d of 11", c.Stats().Records)
	assert.Zero(t, c.Stats().Undecoded)
}
