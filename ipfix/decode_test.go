package ipfix_test

import (
	"errors"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func value(enterprise uint32, id uint16, raw ...byte) ipfix.Value {
	return ipfix.Value{
		Field:   ipfix.FieldSpecifier{ID: id, Length: uint16(len(raw)), EnterpriseNumber: enterprise},
		Element: ipfix.LookupElement(enterprise, id),
		Raw:     raw,
	}
}

func TestValueUint(t *testing.T) {
	// Reduced-size encoding (RFC 7011 §6.2): any length 1..8.
	raw := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	want := []uint64{0x01, 0x0102, 0x010203, 0x01020304, 0x0102030405, 0x010203040506, 0x01020304050607, 0x0102030405060708}
	for n := 1; n <= 8; n++ {
		v := ipfix.Value{Raw: raw[:n]}
		assert.Equal(t, want[n-1], v.Uint(), "length %d", n)
		assert.Equal(t, want[n-1], ipfix.Value{Raw: ipfix.AppendUint(nil, want[n-1], n)}.Uint())
	}
	assert.Zero(t, ipfix.Value{Raw: make([]byte, 9)}.Uint())
	assert.Zero(t, ipfix.Value{}.Uint())
}

func TestValueInt(t *testing.T) {
	assert.Equal(t, int64(-1), ipfix.Value{Raw: []byte{0xff}}.Int())
	assert.Equal(t, int64(-2), ipfix.Value{Raw: []byte{0xff, 0xfe}}.Int())
	assert.Equal(t, int64(-129), ipfix.Value{Raw: []byte{0xff, 0xff, 0x7f}}.Int())
	assert.Equal(t, int64(127), ipfix.Value{Raw: []byte{0x7f}}.Int())
	assert.Equal(t, int64(math.MinInt64), ipfix.Value{Raw: []byte{0x80, 0, 0, 0, 0, 0, 0, 0}}.Int())
}

func TestValueAddrMAC(t *testing.T) {
	assert.Equal(t, netip.MustParseAddr("10.1.2.3"), value(0, 8, 10, 1, 2, 3).Addr())
	v6 := netip.MustParseAddr("2001:db8::1")
	b := v6.As16()
	assert.Equal(t, v6, value(ipfix.EnterpriseDPI, 1003, b[:]...).Addr())
	assert.False(t, value(0, 8, 1, 2, 3).Addr().IsValid())
	assert.Equal(t, "00:11:22:33:44:55", value(0, 56, 0, 0x11, 0x22, 0x33, 0x44, 0x55).MAC().String())
}

func TestValueTime(t *testing.T) {
	sec := time.Unix(1700000000, 0).UTC()
	assert.Equal(t, sec, value(0, 150, ipfix.AppendUint(nil, 1700000000, 4)...).Time())
	assert.Equal(t, sec, value(ipfix.EnterpriseDPI, 1001, ipfix.AppendUint(nil, 1700000000, 4)...).Time(), "DPI TIME_STAMP is Unix seconds")
	ms := time.UnixMilli(1700000000123).UTC()
	assert.Equal(t, ms, value(0, 152, ipfix.AppendUint(nil, 1700000000123, 8)...).Time())
	// NTP timestamps: seconds since 1900, fraction of 2^32.
	ntp := ipfix.AppendUint(nil, 1700000000+2208988800, 4)
	ntp = ipfix.AppendUint(ntp, 1<<31, 4) // 0.5 s
	assert.Equal(t, time.Unix(1700000000, 500000000).UTC(), value(0, 156, ntp...).Time())
	assert.Equal(t, time.Unix(1700000000, 500000000).UTC(), value(0, 154, ntp...).Time())
	assert.True(t, value(0, 1, 1, 2, 3, 4).Time().IsZero(), "not a time element")
	assert.True(t, ipfix.Value{Raw: []byte{1, 2, 3, 4}}.Time().IsZero(), "unknown element")
}

func TestValueFloat(t *testing.T) {
	f64 := ipfix.AppendUint(nil, math.Float64bits(1.5), 8)
	f32 := ipfix.AppendUint(nil, uint64(math.Float32bits(2.5)), 4)
	assert.Equal(t, 1.5, ipfix.Value{Raw: f64}.Float())
	assert.Equal(t, 2.5, ipfix.Value{Raw: f32}.Float())
	assert.Equal(t, 300.0, value(0, 1, 1, 44).Float())
}

func TestValueString(t *testing.T) {
	cases := []struct {
		v    ipfix.Value
		want string
	}{
		{value(0, 1, 0, 0, 0, 0, 0, 0, 1, 0), "256"},
		{value(0, 8, 192, 0, 2, 1), "192.0.2.1"},
		{value(0, 56, 0, 0x11, 0x22, 0x33, 0x44, 0x55), "00:11:22:33:44:55"},
		{value(0, 152, ipfix.AppendUint(nil, 1700000000123, 8)...), "2023-11-14T22:13:20.123Z"},
		{value(ipfix.EnterpriseDPI, 1005, []byte("example.com")...), `"example.com"`},
		{value(ipfix.EnterpriseDPI, 2017, 0xde, 0xad), "dead"},
		{value(99, 1, 0xbe, 0xef), "beef"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.v.String())
	}
}

func TestElements(t *testing.T) {
	for _, name := range []string{"octetDeltaCount", "sourceIPv4Address", "flowStartMilliseconds",
		"postNATSourceIPv4Address", "postNAPTSourceTransportPort", "ingressVRFID", "privateEnterpriseNumber",
		"timeStamp", "login", "ipSource", "hostname", "sessionId", "bridgeChannelNum", "vdpiProto",
		"dnsIpSource", "dnsIpDestination", "mailSender", "rrType", "rawData"} {
		e := ipfix.ElementByName(name)
		require.NotNil(t, e, name)
		assert.Same(t, e, ipfix.LookupElement(e.EnterpriseNumber, e.ID))
	}
	e := ipfix.LookupElement(ipfix.EnterpriseDPI, 2000)
	require.NotNil(t, e)
	assert.Equal(t, "sessionId", e.Name)
	assert.Equal(t, ipfix.Unsigned64, e.Type)
	assert.Equal(t, "unsigned64", e.Type.String())
	assert.Equal(t, ipfix.DateTimeMilliseconds, ipfix.LookupElement(0, 152).Type)
	assert.Nil(t, ipfix.LookupElement(0, 5000))
	assert.Nil(t, ipfix.LookupElement(1, 1))
	assert.Nil(t, ipfix.ElementByName("nope"))

	// Every element id of the DPI reference tables is known.
	for _, id := range []uint16{1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012,
		1013, 1014, 1020, 1021, 1022, 1023, 1024, 1025, 1030, 1031, 1032, 1103, 1104, 2000, 2013, 2014,
		2015, 2016, 2017, 2018, 2900, 2901, 3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3050,
		3051, 3052, 3053, 3100, 3101, 3102, 3103, 3104, 3105, 3150, 3151, 3152, 3153, 3154, 3155, 3156,
		3157, 3158, 3200, 3201, 3202, 3203, 3204, 3205} {
		assert.NotNil(t, ipfix.LookupElement(ipfix.EnterpriseDPI, id), "43823/%d", id)
	}
	names := map[string]bool{}
	for _, e := range ipfix.Elements() {
		assert.False(t, names[e.Name], e.Name)
		names[e.Name] = true
	}
}

func TestDecode(t *testing.T) {
	ft, ct := fullflowTemplate(256), clickTemplate(257)
	var fb, cb []byte
	for i := range 3 {
		fb = fullflowRecord(fb, i)
	}
	// Both variable-length forms: path lengths 0, 254 (1-byte), 255 and 1000 (3-byte).
	for i, l := range []int{0, 254, 255, 1000} {
		cb = clickRecord(cb, i, l)
	}
	msg := mkMessage(9, 5, mkTemplateSet(ft, ct),
		mkSet(256, fb, []byte{0, 0, 0, 0}), // padding shorter than a record
		mkSet(257, cb, []byte{0}),
	)
	require.NoError(t, ipfix.CheckMessage(msg))
	c := ipfix.NewTemplateCache(0)
	recs := decodeAll(t, c, msg)
	require.Len(t, recs, 7)
	for i := range 3 {
		assert.Equal(t, uint16(256), recs[i].TemplateID)
		assert.Equal(t, uint32(9), recs[i].ODID)
		assert.Equal(t, fullflowRecord(nil, i), joinBytes(recs[i].Values...))
	}
	for i, l := range []int{0, 254, 255, 1000} {
		r := recs[3+i]
		assert.Equal(t, uint16(257), r.TemplateID)
		assert.Len(t, r.Values[5], l)
		assert.Equal(t, []byte("example.com"), r.Values[4])
	}

	// Values carry elements and decode by type.
	d := ipfix.NewDecoder(c)
	n := 0
	err := d.Decode(mkMessage(9, 5, mkSet(256, fullflowRecord(nil, 7))), fixedNow, func(r *ipfix.Record) error {
		n++
		byName := map[string]ipfix.Value{}
		for _, v := range r.Values {
			require.NotNil(t, v.Element, "field %d", v.Field.ID)
			byName[v.Element.Name] = v
		}
		assert.Equal(t, uint64(1007), byName["octetDeltaCount"].Uint())
		assert.Equal(t, netip.MustParseAddr("10.0.0.7"), byName["sourceIPv4Address"].Addr())
		assert.Equal(t, time.UnixMilli(1700000000007).UTC(), byName["flowStartMilliseconds"].Time())
		assert.Equal(t, uint64(443), byName["destinationTransportPort"].Uint())
		assert.Equal(t, uint64(7), byName["vdpiProto"].Uint())
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestDecodeErrors(t *testing.T) {
	ft, ct := fullflowTemplate(256), clickTemplate(257)
	good := clickRecord(nil, 1, 10)
	// Variable-length overflow: the path claims 255+2 bytes form with 600 bytes
	// but the set ends first.
	bad := joinBytes(ipfix.AppendUint(nil, 1, 4), ipfix.AppendVarLen(nil, []byte("u")), make([]byte, 8),
		ipfix.AppendVarLen(nil, []byte("h")), []byte{255, 2, 88}, make([]byte, 30))
	c := ipfix.NewTemplateCache(0)
	learn(t, c, mkMessage(1, 0, mkTemplateSet(ft, ct)))

	msg := mkMessage(1, 0,
		mkSet(300, []byte{1, 2, 3, 4}), // unknown template: skipped
		mkSet(257, good, bad),          // second record overruns the set
		mkSet(256, fullflowRecord(nil, 1)),
	)
	require.NoError(t, ipfix.CheckMessage(msg))
	d := ipfix.NewDecoder(c)
	var got []uint16
	err := d.Decode(msg, fixedNow, func(r *ipfix.Record) error {
		got = append(got, r.Template.ID)
		return nil
	})
	assert.Equal(t, []uint16{257, 256}, got, "good records are all delivered")
	require.ErrorIs(t, err, ipfix.ErrUnknownTemplate)
	var pe *ipfix.ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 16, pe.Offset)
	assert.Equal(t, uint16(300), pe.SetID)
	assert.Equal(t, 2, d.SkippedSets())

	// The overflow alone.
	err = d.Decode(mkMessage(1, 0, mkSet(257, good, bad)), fixedNow, func(*ipfix.Record) error { return nil })
	require.ErrorIs(t, err, ipfix.ErrFieldLength)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 16+4+len(good), pe.Offset)

	// Errors from fn stop decoding and come back unchanged.
	stop := errors.New("stop")
	calls := 0
	err = d.Decode(msg, fixedNow, func(*ipfix.Record) error { calls++; return stop })
	require.Equal(t, stop, err)
	assert.Equal(t, 1, calls)

	// Templates learned in the same message apply to later sets.
	fresh := ipfix.NewTemplateCache(0)
	recs := decodeAll(t, fresh, mkMessage(1, 0, mkTemplateSet(ft), mkSet(256, fullflowRecord(nil, 3))))
	require.Len(t, recs, 1)

	// Set structure errors stop decoding.
	err = ipfix.NewDecoder(fresh).Decode(mkMessage(1, 0, be16(256, 2)), fixedNow, func(*ipfix.Record) error { return nil })
	require.ErrorIs(t, err, ipfix.ErrSetLength)
}

func TestDecodeNoAllocs(t *testing.T) {
	ft, ct := fullflowTemplate(256), clickTemplate(257)
	var fb, cb []byte
	for i := range 40 {
		fb = fullflowRecord(fb, i)
		cb = clickRecord(cb, i, i*10)
	}
	// Steady state: the exporter re-sends its templates in the data messages
	// (UDP), and templates are already known.
	msg := mkMessage(1, 0, mkTemplateSet(ft, ct), mkSet(256, fb), mkSet(257, cb))
	c := ipfix.NewTemplateCache(30 * time.Minute)
	d := ipfix.NewDecoder(c)
	var sum uint64
	fn := func(r *ipfix.Record) error { sum += r.Values[0].Uint(); return nil }
	require.NoError(t, d.Decode(msg, fixedNow, fn))
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Decode(msg, fixedNow, fn); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	allocs = testing.AllocsPerRun(100, func() {
		if n, err := ipfix.FrameLength(msg); err != nil || n != len(msg) {
			t.Fatal(n, err)
		}
		if err := ipfix.CheckMessage(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Learn(msg, fixedNow); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	allocs = testing.AllocsPerRun(100, func() {
		if err := ipfix.Repack(msg, c, 1400, func([]byte) {}); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}
