package ipfix_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := ipfix.Header{Version: 10, Length: 16, ExportTime: 1, SequenceNumber: 0xfffffffe, ObservationDomainID: 7}
	b := make([]byte, 16)
	ipfix.PutHeader(b, h)
	got, err := ipfix.ParseHeader(b)
	require.NoError(t, err)
	assert.Equal(t, h, got)

	ipfix.SetSequenceNumber(b, 42)
	got, err = ipfix.ParseHeader(b)
	require.NoError(t, err)
	assert.Equal(t, uint32(42), got.SequenceNumber)
}

// testStream returns a stream of messages of varied sizes and their boundaries.
func testStream(t testing.TB) (stream []byte, msgs [][]byte) {
	ft, ct := fullflowTemplate(256), clickTemplate(257)
	var recs []taggedRecord
	for i := range 300 {
		recs = append(recs, taggedRecord{256, fullflowRecord(nil, i)})
		recs = append(recs, taggedRecord{257, clickRecord(nil, i, i%300)})
	}
	msgs = encodeAll(t, 1, 1400, []*ipfix.Template{ft, ct}, recs)
	// A header-only message and a maximal-length one are legal too.
	msgs = append(msgs, mkMessage(1, 0))
	big := encodeAll(t, 2, ipfix.MaxMessageLen, []*ipfix.Template{ct}, []taggedRecord{{257, clickRecord(nil, 1, 65000)}})
	msgs = append(msgs, big...)
	for _, m := range msgs {
		stream = append(stream, m...)
	}
	return stream, msgs
}

// frame feeds stream to FrameLength in chunks of the given sizes (the last
// repeating) as a TCP reader would, and returns the messages framed.
func frame(t testing.TB, stream []byte, chunks ...int) [][]byte {
	var out [][]byte
	var buf []byte
	pos, ci := 0, 0
	for pos < len(stream) || len(buf) > 0 {
		if pos < len(stream) {
			n := chunks[min(ci, len(chunks)-1)]
			ci++
			n = min(n, len(stream)-pos)
			buf = append(buf, stream[pos:pos+n]...)
			pos += n
		}
		for {
			n, err := ipfix.FrameLength(buf)
			require.NoError(t, err)
			if n == 0 {
				break
			}
			require.LessOrEqual(t, n, len(buf))
			out = append(out, append([]byte(nil), buf[:n]...))
			buf = buf[n:]
		}
		if pos >= len(stream) {
			require.Empty(t, buf, "bytes left over")
			break
		}
	}
	return out
}

func TestFrameLengthEverySplit(t *testing.T) {
	stream, want := testStream(t)
	// Split once at every byte boundary of the first messages (including inside
	// the 16-byte header), and feed the whole stream one byte at a time.
	for split := 0; split <= 3000; split++ {
		got := frame(t, stream, split, len(stream))
		require.Equal(t, len(want), len(got), "split %d", split)
	}
	for _, chunk := range []int{1, 2, 3, 15, 16, 17, 1399, 1400, 1401, 4096} {
		got := frame(t, stream, chunk)
		require.Equal(t, want, got, "chunk %d", chunk)
	}
}

func TestFrameLengthPartial(t *testing.T) {
	msg := mkMessage(1, 0, mkSet(300, []byte{1, 2, 3, 4}))
	for i := 0; i < len(msg); i++ {
		n, err := ipfix.FrameLength(msg[:i])
		require.NoError(t, err, "prefix %d", i)
		require.Zero(t, n, "prefix %d", i)
	}
	n, err := ipfix.FrameLength(append(msg, 0, 10))
	require.NoError(t, err)
	require.Equal(t, len(msg), n)
}

func TestFrameLengthErrors(t *testing.T) {
	f := func(in []byte, want error) {
		t.Helper()
		n, err := ipfix.FrameLength(in)
		require.Zero(t, n)
		require.ErrorIs(t, err, want)
		var pe *ipfix.ParseError
		require.True(t, errors.As(err, &pe))
		require.Equal(t, 0, pe.Offset)
	}
	f([]byte{0, 9}, ipfix.ErrVersion)                     // NetFlow v9 header, caught after 2 bytes
	f([]byte{0, 5, 0, 24, 1, 2}, ipfix.ErrVersion)        // NetFlow v5
	f([]byte{0, 10, 0, 0}, ipfix.ErrMessageLength)        // length 0
	f([]byte{0, 10, 0, 15, 0, 0}, ipfix.ErrMessageLength) // length 15
}

func TestParseHeaderErrors(t *testing.T) {
	_, err := ipfix.ParseHeader(make([]byte, 15))
	require.ErrorIs(t, err, ipfix.ErrShortMessage)
	_, err = ipfix.ParseHeader(mkMessage(1, 0)[:15])
	require.ErrorIs(t, err, ipfix.ErrShortMessage)
}

func TestCheckMessage(t *testing.T) {
	good := mkMessage(1, 0, mkTemplateSet(fullflowTemplate(256)), mkSet(256, fullflowRecord(nil, 1)))
	require.NoError(t, ipfix.CheckMessage(good))
	require.NoError(t, ipfix.CheckMessage(mkMessage(1, 0)))

	withLen := func(m []byte, n uint16) []byte {
		m = append([]byte(nil), m...)
		m[2], m[3] = byte(n>>8), byte(n)
		return m
	}
	cases := []struct {
		name   string
		msg    []byte
		want   error
		offset int
	}{
		{"truncated header", good[:10], ipfix.ErrShortMessage, 0},
		{"version 9", append([]byte{0, 9}, good[2:]...), ipfix.ErrVersion, 0},
		{"length 0", withLen(good, 0), ipfix.ErrMessageLength, 0},
		{"length 15", withLen(good, 15), ipfix.ErrMessageLength, 0},
		{"shorter than header length", good[:len(good)-1], ipfix.ErrShortMessage, 0},
		{"longer than header length", append(append([]byte(nil), good...), 0), ipfix.ErrMessageLength, len(good)},
		// Sets claim more than the header length (as a 65536-byte message would).
		{"set longer than message", mkMessage(1, 0, joinBytes(be16(256, 200), make([]byte, 20))), ipfix.ErrSetLength, 16},
		{"set length 3", mkMessage(1, 0, be16(256, 3, 0)), ipfix.ErrSetLength, 16},
		{"set length 0", mkMessage(1, 0, mkSet(256, []byte{1, 2, 3, 4}), be16(256, 0)), ipfix.ErrSetLength, 24},
		{"trailing bytes", mkMessage(1, 0, mkSet(256, []byte{1, 2, 3, 4}), []byte{0, 0, 0}), ipfix.ErrSetLength, 24},
		{"set id 0", mkMessage(1, 0, mkSet(0, []byte{1, 2, 3, 4})), ipfix.ErrSetID, 16},
		{"set id 1", mkMessage(1, 0, mkSet(1)), ipfix.ErrSetID, 16},
		{"set id 255", mkMessage(1, 0, mkSet(300), mkSet(255)), ipfix.ErrSetID, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ipfix.CheckMessage(tc.msg)
			require.ErrorIs(t, err, tc.want)
			var pe *ipfix.ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tc.offset, pe.Offset)
		})
	}
	// Reserved set ids are a kind of bad set.
	require.ErrorIs(t, ipfix.CheckMessage(mkMessage(1, 0, mkSet(4))), ipfix.ErrSetLength)
}

func TestParseErrorText(t *testing.T) {
	cases := []struct {
		err  *ipfix.ParseError
		want string
	}{
		{&ipfix.ParseError{Offset: 40, SetID: 256, TemplateID: 256, Err: ipfix.ErrUnknownTemplate}, "ipfix: offset 40 set 256: unknown template"},
		{&ipfix.ParseError{Offset: 40, SetID: 2, TemplateID: 300, Err: ipfix.ErrTemplate}, "ipfix: offset 40 set 2 template 300: bad template"},
		{&ipfix.ParseError{Offset: 0, Err: ipfix.ErrVersion}, "ipfix: offset 0: bad version"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.err.Error())
	}
}

func TestSetIterator(t *testing.T) {
	msg := mkMessage(1, 0, mkSet(2, []byte{1, 0, 0, 1, 0, 8, 0, 4}), mkSet(256, []byte{9, 9, 9, 9}), mkSet(3))
	it := ipfix.Sets(msg)
	var ids []uint16
	var offs []int
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		ids = append(ids, s.ID)
		offs = append(offs, s.Offset)
		if s.ID == 256 {
			assert.Equal(t, []byte{9, 9, 9, 9}, s.Body)
		}
	}
	require.NoError(t, it.Err())
	assert.Equal(t, []uint16{2, 256, 3}, ids)
	assert.Equal(t, []int{16, 28, 36}, offs)
}

func TestSplitDatagram(t *testing.T) {
	a := mkMessage(1, 0, mkSet(256, []byte{1, 2, 3, 4}))
	b := mkMessage(2, 0)
	bad := mkMessage(3, 0, be16(256, 3, 0)) // framed fine, set length 3
	var got [][]byte
	collect := func(m []byte) { got = append(got, m) }

	n, err := ipfix.SplitDatagram(joinBytes(a, b), collect)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, [][]byte{a, b}, got)

	got = nil
	n, err = ipfix.SplitDatagram(joinBytes(a, bad, b, bad), collect)
	require.ErrorIs(t, err, ipfix.ErrSetLength)
	var pe *ipfix.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, len(a)+16, pe.Offset)
	require.Equal(t, 2, n)
	require.Equal(t, [][]byte{a, b}, got)

	// Lost framing drops the rest.
	got = nil
	n, err = ipfix.SplitDatagram(joinBytes(a, b[:10]), collect)
	require.ErrorIs(t, err, ipfix.ErrShortMessage)
	require.Equal(t, 1, n)
	require.Equal(t, [][]byte{a}, got)

	got = nil
	trunc := joinBytes(a, a[:len(a)-1])
	n, err = ipfix.SplitDatagram(trunc, collect)
	require.ErrorIs(t, err, ipfix.ErrShortMessage)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, len(a), pe.Offset)
	require.Equal(t, 1, n)

	got = nil
	n, err = ipfix.SplitDatagram(joinBytes(a, []byte{0, 9, 0, 20}, make([]byte, 16)), collect)
	require.ErrorIs(t, err, ipfix.ErrVersion)
	require.Equal(t, 1, n)
	require.True(t, bytes.Equal(a, got[0]))
}
