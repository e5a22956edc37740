package balancer_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// exporterStats is an options template like the exporting process reliability
// statistics of RFC 7011 §4.3: scope observationDomainId, then counters.
var exporterStats = ipfix.NewOptionsTemplate(400, 1, []ipfix.FieldSpecifier{
	{ID: 149, Length: 4}, {ID: 41, Length: 8}, {ID: 42, Length: 8},
})

// optionRecords counts the decoded records of template id in a collector's multiset.
func optionRecords(c *testenv.Collector, id uint16) int {
	n := 0
	for k, v := range c.Records() {
		if len(k) >= 2 && uint16(k[0])<<8|uint16(k[1]) == id {
			n += v
		}
	}
	return n
}

// In RoundRobin each data message goes to one subreceiver, but options data
// (exporter statistics, sampling, type information) describes the whole
// session: every subreceiver gets all of it, like the templates (issue 11 item 3).
func TestRoundRobinOptionsDataReachesEverySubreceiver(t *testing.T) {
	c1 := testenv.StartCollector(t, "tcp")
	c2 := testenv.StartCollector(t, "tcp")
	r := startReceiver(t, receiverConfig(config.RoundRobin, c1, c2))
	for _, c := range []*testenv.Collector{c1, c2} {
		testenv.WaitFor(t, 10*time.Second, "subreceiver up", func() bool {
			return metricValue(t, r, `ipfix_balancer_subreceiver_up{stream="fullflow",dpi="0",subreceiver="`+c.Addr()+`"}`) == 1
		})
	}

	const statsMessages = 10
	tr := makeTraffic(t, 2000, 3, 1400, 1)
	var msgs [][]byte
	enc := ipfix.NewEncoder(3, 1400)
	enc.SetExportTime(1_700_000_000)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, append([]byte(nil), m...)) })
	enc.AddTemplate(exporterStats)
	per := len(tr.messages) / statsMessages
	for i := range statsMessages {
		// One statistics message (the first with its template) after each run of data.
		rec := ipfix.AppendUint(nil, 3, 4)
		rec = ipfix.AppendUint(rec, uint64(i), 8)
		rec = ipfix.AppendUint(rec, uint64(1000*i), 8)
		require.NoError(t, enc.AppendRecord(exporterStats.ID, rec))
		enc.Flush()
		msgs = append(msgs, tr.messages[i*per:(i+1)*per]...)
	}
	msgs = append(msgs, tr.messages[statsMessages*per:]...)

	exp, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer exp.Close()
	writeAll(t, exp, msgs)

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (optionRecords(c1, exporterStats.ID) < statsMessages || optionRecords(c2, exporterStats.ID) < statsMessages) {
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, c1.WaitRecords(1, time.Second) && c2.WaitRecords(1, time.Second), "both subreceivers must get data")
	assert.Equal(t, statsMessages, optionRecords(c1, exporterStats.ID), "options records at subreceiver 1")
	assert.Equal(t, statsMessages, optionRecords(c2, exporterStats.ID), "options records at subreceiver 2")
	// Data records still go to one subreceiver each.
	testenv.WaitFor(t, 10*time.Second, "every data record", func() bool {
		return c1.Stats().Records+c2.Stats().Records >= tr.count+2*statsMessages
	})
	got := union(c1, c2)
	for k, v := range tr.records {
		assert.Equal(t, v, got[k], "data record sent %d times", v)
	}
	assert.Zero(t, c1.Stats().Undecoded+c2.Stats().Undecoded)
}
