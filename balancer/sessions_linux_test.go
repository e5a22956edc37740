package balancer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// Two UDP exporters (two source addresses) define template 256 of domain 0
// with different layouts. A TCP subreceiver and a UDP one whose MTU makes the
// balancer re-pack every message (by the templates of the message's session,
// under their ids downstream) both decode each record with its session's
// layout (issue 11 item 1).
func TestUDPSessionsKeepTheirTemplatesDownstream(t *testing.T) {
	c1 := testenv.StartCollector(t, "tcp")
	c2 := testenv.StartCollector(t, "udp")
	cfg := udpReceiverConfig(config.All, c1, c2)
	cfg.MTU = 600
	r := startReceiver(t, cfg)
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c1) })

	a, b := layoutMessages(t, addrsLayout, sessionRecords), layoutMessages(t, countersLayout, sessionRecords)
	ca, cb := dialUDP(t, r.Addr()), dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 32}
	for i := 0; i < max(len(a), len(b)); i++ {
		if i < len(a) {
			snd.send(ca, a[i])
		}
		if i < len(b) {
			snd.send(cb, b[i])
		}
	}
	snd.wait()
	for _, c := range []*testenv.Collector{c1, c2} {
		deadline := time.Now().Add(20 * time.Second)
		for c.Stats().Records < 2*sessionRecords && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	checkLayouts(t, c1.Records(), 1, "tcp subreceiver")
	checkLayouts(t, c2.Records(), 1, "udp subreceiver (re-packed)")
	assert.Zero(t, c1.Stats().Undecoded+c2.Stats().Undecoded, "undecoded data sets")
}
