package dpisim_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

var testNow = time.Date(2025, 11, 22, 12, 0, 0, 0, time.UTC)

func newGen(tb testing.TB, s dpisim.Stream, seed int64, share float64) *dpisim.Generator {
	tb.Helper()
	g, err := dpisim.NewWithConfig(dpisim.Config{Stream: s, Seed: seed, IPv6Share: share, Now: testNow})
	require.NoError(tb, err)
	return g
}

func TestDeterministic(t *testing.T) {
	for _, s := range dpisim.Streams() {
		t.Run(string(s), func(t *testing.T) {
			a, b, c := newGen(t, s, 1, 0.3), newGen(t, s, 1, 0.3), newGen(t, s, 2, 0.3)
			var ra, rb, rc []byte
			differ := false
			for i := range 500 {
				ida, x := a.Next(ra[:0])
				idb, y := b.Next(rb[:0])
				_, z := c.Next(rc[:0])
				ra, rb, rc = x, y, z
				require.Equal(t, ida, idb, "record %d", i)
				require.Equal(t, x, y, "record %d", i)
				differ = differ || !bytes.Equal(x, z)
			}
			assert.True(t, differ, "seeds 1 and 2 gave the same records")
		})
	}
}

func TestUnknownStream(t *testing.T) {
	_, err := dpisim.New("netflow9", 1, 0)
	require.Error(t, err)
	_, err = dpisim.New(dpisim.Clickstream, 1, 1.5)
	require.Error(t, err)
	assert.Nil(t, dpisim.Templates("netflow9", false))
}

func TestTemplates(t *testing.T) {
	ids := map[uint16]string{}
	for _, s := range dpisim.Streams() {
		for _, v6 := range []bool{false, true} {
			ts := dpisim.Templates(s, v6)
			require.Len(t, ts, 1)
			tm := ts[0]
			name := fmt.Sprintf("%s v6=%v", s, v6)
			if prev, dup := ids[tm.ID]; dup {
				t.Errorf("template id %d of %s already used by %s", tm.ID, name, prev)
			}
			ids[tm.ID] = name
			for _, f := range tm.Fields {
				el := ipfix.LookupElement(f.EnterpriseNumber, f.ID)
				if assert.NotNil(t, el, "%s: element %d/%d unknown to ipfix", name, f.EnterpriseNumber, f.ID) {
					// Fields of enterprise 43823 carry the enterprise bit
					// on the wire (RFC 7011 §3.2).
					if f.EnterpriseNumber != 0 {
						assert.Equal(t, ipfix.EnterpriseDPI, f.EnterpriseNumber)
						assert.GreaterOrEqual(t, f.ID, uint16(1000), "%s: %s", name, el.Name)
					}
				}
			}
		}
	}
	// Spot checks against the reference tables.
	cs := dpisim.Templates(dpisim.Clickstream, false)[0].Fields
	require.Len(t, cs, 24)
	assert.Equal(t, ipfix.FieldSpecifier{ID: 1001, Length: 4, EnterpriseNumber: ipfix.EnterpriseDPI}, cs[0])
	assert.Equal(t, ipfix.FieldSpecifier{ID: 1002, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI}, cs[1])
	assert.Equal(t, ipfix.FieldSpecifier{ID: 2018, Length: 4, EnterpriseNumber: ipfix.EnterpriseDPI}, cs[23])
	cs6 := dpisim.Templates(dpisim.Clickstream, true)[0].Fields
	assert.Equal(t, uint16(16), cs6[2].Length)
	assert.Equal(t, uint16(1003), cs6[2].ID)
	dns6 := dpisim.Templates(dpisim.DNSFlow, true)[0].Fields
	assert.Equal(t, ipfix.FieldSpecifier{ID: 1103, Length: 16, EnterpriseNumber: ipfix.EnterpriseDPI}, dns6[2])
	assert.Equal(t, ipfix.FieldSpecifier{ID: 1104, Length: 16, EnterpriseNumber: ipfix.EnterpriseDPI}, dns6[3])
	ff := dpisim.Templates(dpisim.Fullflow, false)[0].Fields
	assert.Equal(t, ipfix.FieldSpecifier{ID: 1, Length: 8}, ff[0])
	ff6 := dpisim.Templates(dpisim.Fullflow, true)[0].Fields
	assert.Equal(t, ipfix.FieldSpecifier{ID: 27, Length: 16}, ff6[6])
}

// decodeAll frames n records of g with ipfix.Encoder and decodes them back,
// calling fn for each record.
func decodeAll(t *testing.T, g *dpisim.Generator, n int, fn func(r *ipfix.Record)) {
	t.Helper()
	enc := ipfix.NewEncoder(1, 1400)
	var msgs [][]byte
	enc.SetOutput(func(m []byte) { msgs = append(msgs, bytes.Clone(m)) })
	for _, tm := range g.Templates() {
		enc.AddTemplate(tm)
	}
	var buf []byte
	for range n {
		id, rec := g.Next(buf[:0])
		buf = rec
		require.LessOrEqual(t, len(rec), dpisim.MaxRecordLength)
		require.NoError(t, enc.AppendRecord(id, rec))
	}
	enc.Flush()
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	got := 0
	for _, m := range msgs {
		require.NoError(t, ipfix.CheckMessage(m))
		require.NoError(t, dec.Decode(m, testNow, func(r *ipfix.Record) error {
			got++
			fn(r)
			return nil
		}))
	}
	require.Equal(t, n, got)
}

var (
	subnet4 = netip.MustParsePrefix("10.0.0.0/8")
	subnet6 = netip.MustParsePrefix("2001:db8::/32")
)

// checkValue asserts that a decoded value is sensible for its element.
func checkValue(t *testing.T, stream dpisim.Stream, v ipfix.Value) {
	t.Helper()
	require.NotNil(t, v.Element, "field %+v", v.Field)
	name := v.Element.Name
	ctx := fmt.Sprintf("%s %s = %s", stream, name, v.String())
	switch v.Element.Type {
	case ipfix.String:
		assert.True(t, utf8.Valid(v.Raw), ctx)
	case ipfix.DateTimeSeconds, ipfix.DateTimeMilliseconds:
		tm := v.Time()
		assert.False(t, tm.After(testNow), ctx)
		lim := 5 * time.Second
		if name == "flowStartMilliseconds" {
			lim = 3 * time.Minute
		}
		assert.True(t, tm.After(testNow.Add(-lim)), ctx)
	}
	switch name {
	case "login":
		assert.NotEmpty(t, v.Raw, ctx)
	case "hostname":
		if stream != dpisim.Fullflow {
			assert.NotEmpty(t, v.Raw, ctx)
		}
		assert.NotContains(t, string(v.Raw), " ", ctx)
	case "domain":
		assert.Contains(t, string(v.Raw), ".", ctx)
	case "path":
		if len(v.Raw) > 0 {
			assert.True(t, strings.HasPrefix(string(v.Raw), "/"), ctx)
		}
	case "hostType":
		assert.True(t, v.Uint() >= 1 && v.Uint() <= 4, ctx)
	case "method":
		assert.LessOrEqual(t, v.Uint(), uint64(4), ctx)
	case "portDestination", "portSource":
		assert.NotZero(t, v.Uint(), ctx)
	case "resultCode":
		assert.Contains(t, []uint64{0, 1, 200, 204, 206, 230, 250, 301, 302, 304, 307, 403, 404, 500, 502, 503, 530, 550}, v.Uint(), ctx)
	case "rrClass":
		assert.Equal(t, uint64(1), v.Uint(), ctx)
	case "rrType":
		assert.Contains(t, []uint64{1, 2, 5, 15, 16, 28, 65}, v.Uint(), ctx)
	case "ttl":
		assert.LessOrEqual(t, v.Uint(), uint64(86400), ctx)
	case "sslVersion":
		assert.True(t, v.Uint() >= 0x0301 && v.Uint() <= 0x0304, ctx)
	case "cipherSuites":
		assert.LessOrEqual(t, len(v.Raw), 32, ctx)
		assert.Zero(t, len(v.Raw)%2, ctx)
	case "octetDeltaCount":
		assert.NotZero(t, v.Uint(), ctx)
	case "packetDeltaCount":
		assert.NotZero(t, v.Uint(), ctx)
	case "protocolIdentifier":
		assert.Contains(t, []uint64{1, 6, 17, 47, 50}, v.Uint(), ctx)
	case "ipSource":
		a := v.Addr()
		assert.True(t, subnet4.Contains(a) || subnet6.Contains(a), ctx)
	case "dnsIpSource":
		assert.True(t, subnet6.Contains(v.Addr()), ctx)
	case "ipDestination", "dnsIpDestination":
		assert.True(t, v.Addr().IsValid() && !v.Addr().IsUnspecified(), ctx)
	case "sourceMacAddress":
		assert.Len(t, v.Raw, 6, ctx)
	case "vlanId":
		assert.True(t, v.Uint() >= 100 && v.Uint() < 500, ctx)
	case "imProtocol":
		assert.Contains(t, []uint64{0, 7, 106}, v.Uint(), ctx)
	case "mode", "attachment":
		assert.LessOrEqual(t, v.Uint(), uint64(1), ctx)
	case "event":
		assert.True(t, v.Uint() == 1 || v.Uint() == 2, ctx)
	case "mailProtocol":
		assert.LessOrEqual(t, v.Uint(), uint64(2), ctx)
	}
}

func TestRecordsDecode(t *testing.T) {
	for _, s := range dpisim.Streams() {
		for _, share := range []float64{0, 0.5, 1} {
			t.Run(fmt.Sprintf("%s/v6=%v", s, share), func(t *testing.T) {
				g := newGen(t, s, 1, share)
				byID := map[uint16]*ipfix.Template{}
				for _, tm := range g.Templates() {
					byID[tm.ID] = tm
				}
				decodeAll(t, g, 1000, func(r *ipfix.Record) {
					tm := byID[r.Template.ID]
					require.NotNil(t, tm, "record of template %d not announced", r.Template.ID)
					require.Len(t, r.Values, len(tm.Fields))
					for i, v := range r.Values {
						require.Equal(t, tm.Fields[i], v.Field)
						checkValue(t, s, v)
					}
				})
			})
		}
	}
}

// TestFullflowConsistency checks relations between fullflow fields.
func TestFullflowConsistency(t *testing.T) {
	g := newGen(t, dpisim.Fullflow, 1, 0.2)
	decodeAll(t, g, 2000, func(r *ipfix.Record) {
		m := map[string]ipfix.Value{}
		for _, v := range r.Values {
			m[v.Element.Name] = v
		}
		octets, packets := m["octetDeltaCount"].Uint(), m["packetDeltaCount"].Uint()
		assert.GreaterOrEqual(t, octets, 40*packets)
		assert.LessOrEqual(t, octets, 1500*packets)
		assert.False(t, m["flowStartMilliseconds"].Time().After(m["flowEndMilliseconds"].Time()))
		src, ok := m["sourceIPv4Address"]
		if !ok {
			src = m["sourceIPv6Address"]
		}
		dst, ok := m["destinationIPv4Address"]
		if !ok {
			dst = m["destinationIPv6Address"]
		}
		// One end is a subscriber.
		sub := func(a netip.Addr) bool { return subnet4.Contains(a) || subnet6.Contains(a) }
		assert.True(t, sub(src.Addr()) != sub(dst.Addr()), "src %s dst %s", src.Addr(), dst.Addr())
	})
}

func TestIPv6Share(t *testing.T) {
	for _, share := range []float64{0, 0.1, 0.3, 1} {
		g := newGen(t, dpisim.Clickstream, 1, share)
		v6 := 0
		const n = 20000
		var buf []byte
		for range n {
			id, rec := g.Next(buf[:0])
			buf = rec
			if id == dpisim.ClickstreamV6TemplateID {
				v6++
			}
		}
		assert.InDelta(t, share, float64(v6)/n, 0.015, "share %v", share)
		assert.Len(t, g.Templates(), map[bool]int{true: 1, false: 2}[share == 0 || share == 1])
	}
}

// TestDistribution checks the long tail: a popular head, yet many hosts
// and subscribers.
func TestDistribution(t *testing.T) {
	g := newGen(t, dpisim.Clickstream, 1, 0)
	hosts, logins := map[string]int{}, map[string]int{}
	decodeAll(t, g, 20000, func(r *ipfix.Record) {
		for _, v := range r.Values {
			switch v.Element.Name {
			case "hostname":
				hosts[string(v.Raw)]++
			case "login":
				logins[string(v.Raw)]++
			}
		}
	})
	assert.Greater(t, len(hosts), 3000, "distinct hosts")
	assert.Greater(t, len(logins), 8000, "distinct logins")
	top := 0
	for _, c := range hosts {
		top = max(top, c)
	}
	assert.Greater(t, top, 500, "the most popular host")
}

func TestNextAllocs(t *testing.T) {
	for _, s := range dpisim.Streams() {
		g := newGen(t, s, 1, 0.3)
		buf := make([]byte, 0, dpisim.MaxRecordLength)
		allocs := testing.AllocsPerRun(1000, func() { g.Next(buf[:0]) })
		assert.Zero(t, allocs, string(s))
	}
}

func TestExporterStats(t *testing.T) {
	tm := dpisim.ExporterStatsTemplate()
	require.True(t, tm.Options)
	enc := ipfix.NewEncoder(5, 1400)
	var msg []byte
	enc.SetOutput(func(m []byte) { msg = bytes.Clone(m) })
	enc.AddTemplate(tm)
	require.NoError(t, enc.AppendRecord(tm.ID, dpisim.AppendExporterStats(nil, 5, 1, 10, 200, 30000, testNow.UnixMilli())))
	enc.Flush()
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	n := 0
	require.NoError(t, dec.Decode(msg, testNow, func(r *ipfix.Record) error {
		n++
		assert.Equal(t, "observationDomainId", r.Values[0].Element.Name)
		assert.Equal(t, uint64(5), r.Values[0].Uint())
		assert.Equal(t, uint64(200), r.Values[3].Uint())
		assert.Equal(t, testNow, r.Values[5].Time())
		return nil
	}))
	assert.Equal(t, 1, n)
}

func BenchmarkNext(b *testing.B) {
	for _, s := range dpisim.Streams() {
		b.Run(string(s), func(b *testing.B) {
			g := newGen(b, s, 1, 0.2)
			buf := make([]byte, 0, dpisim.MaxRecordLength)
			var n int64
			b.ReportAllocs()
			for b.Loop() {
				_, rec := g.Next(buf[:0])
				n += int64(len(rec))
			}
			b.SetBytes(n / int64(b.N))
		})
	}
}

// BenchmarkEncode is Next plus framing by ipfix.Encoder: the work of ipfix-gen
// per record before the socket.
func BenchmarkEncode(b *testing.B) {
	for _, s := range []dpisim.Stream{dpisim.Fullflow, dpisim.Clickstream, dpisim.DNSFlow} {
		b.Run(string(s), func(b *testing.B) {
			g := newGen(b, s, 1, 0.2)
			enc := ipfix.NewEncoder(1, 1400)
			var bytes int64
			enc.SetOutput(func(m []byte) { bytes += int64(len(m)) })
			for _, tm := range g.Templates() {
				enc.AddTemplate(tm)
			}
			buf := make([]byte, 0, dpisim.MaxRecordLength)
			b.ReportAllocs()
			for b.Loop() {
				id, rec := g.Next(buf[:0])
				if err := enc.AppendRecord(id, rec); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(bytes / int64(b.N))
		})
	}
}
