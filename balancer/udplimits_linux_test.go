package balancer_test

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// The README's limits of a UDP receiver's per-source state.
const (
	udpMaxSources         = 1024
	udpMaxSourceTemplates = 1024
)

// A UDP receiver keeps state per source address (RFC 7011 §8.4): sources and
// the templates of each are bounded, what is refused is counted, and a new
// source is not an Info line each (issue 11 item 7).
func TestUDPSourceStateIsBounded(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	var logs syncBuffer
	r, _ := runReceiver(t, udpReceiverConfig(config.All, c), balancer.Options{
		ShutdownTimeout: 2 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })

	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}})
	snd := &udpSender{t: t, r: r, pace: 64}
	conns := make([]*net.UDPConn, udpMaxSources+1)
	for i := range conns {
		conns[i] = dialUDP(t, r.Addr())
		msgs := newIDEncoder(1, 1400, tmpl).messages(t, uint64(i+1), 1)
		if i < udpMaxSources {
			snd.send(conns[i], msgs...)
			continue
		}
		snd.wait() // the sources before are known
		_, err := conns[i].Write(msgs[0])
		require.NoError(t, err)
	}
	dropped := `ipfix_balancer_dropped_messages_total{` + udpLabels + `,reason="too_many_sources"}`
	testenv.WaitFor(t, 5*time.Second, "the last source refused", func() bool { return metricValue(t, r, dropped) >= 1 })
	assert.Equal(t, 1.0, metricValue(t, r, dropped), "messages of the source over the limit")
	assert.Equal(t, float64(udpMaxSources), metricValue(t, r, `ipfix_balancer_exporter_sessions{`+udpLabels+`}`))
	assert.True(t, c.WaitRecords(udpMaxSources, 10*time.Second), "records of the sources accepted: %d", c.Stats().Records)

	// One source defines more templates than a source may hold.
	e := ipfix.NewEncoder(1, ipfix.MaxMessageLen)
	var big [][]byte
	e.SetOutput(func(m []byte) { big = append(big, bytes.Clone(m)) })
	const extra = udpMaxSourceTemplates + 76
	for id := 257; id < 257+extra; id++ {
		e.AddTemplate(ipfix.NewTemplate(uint16(id), []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 4}}))
	}
	e.Flush()
	require.Len(t, big, 1)
	snd.send(conns[0], big...)
	snd.wait()
	assert.Equal(t, 1.0, metricValue(t, r, `ipfix_balancer_parse_errors_total{`+udpLabels+`,kind="too_many_templates"}`), "the message whose templates were refused")
	assert.Equal(t, float64(udpMaxSources-1+udpMaxSourceTemplates), metricValue(t, r, `ipfix_balancer_templates{`+udpLabels+`}`), "templates held")

	out := logs.String()
	assert.Zero(t, strings.Count(out, `level=INFO msg="exporter seen"`), "a new source is not an Info line each")
	assert.Equal(t, 1, strings.Count(out, `msg="udp source refused"`), "the refusal is logged, once per interval")
}
