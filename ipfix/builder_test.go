package ipfix_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// A MessageBuilder fills a message up to its maximum size exactly, opens a
// set per set ID change, finishes a header that CheckMessage accepts, and
// keeps building after the caller moved the open message.
func TestMessageBuilder(t *testing.T) {
	var buf []byte
	mb := ipfix.NewMessageBuilder(&buf, 40) // 16 header + 4 set header + 20
	rec := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	require.True(t, mb.Fits(256, len(rec)))
	mb.Append(256, rec, 1)
	require.True(t, mb.Fits(256, len(rec)), "a second record fills the message exactly")
	mb.Append(256, rec, 1)
	assert.False(t, mb.Fits(256, 1))
	assert.Equal(t, uint32(2), mb.Records())
	msg, recs := mb.Finish(100, 7, 3)
	require.Len(t, msg, 40)
	assert.Equal(t, uint32(2), recs)
	require.NoError(t, ipfix.CheckMessage(msg))
	h, err := ipfix.ParseHeader(msg)
	require.NoError(t, err)
	assert.Equal(t, ipfix.Header{Version: ipfix.Version, Length: 40, ExportTime: 100, SequenceNumber: 7, ObservationDomainID: 3}, h)
	assert.False(t, mb.Open())
	m, r := mb.Finish(0, 0, 0)
	assert.Nil(t, m)
	assert.Zero(t, r)

	// A second message after the first in the same buffer, two sets; the
	// caller sends the first and moves the open one to the front.
	mb.Append(256, rec[:4], 1)
	mb.Append(257, rec[:6], 1)
	assert.False(t, mb.Fits(258, 7), "a new set needs its header")
	assert.True(t, mb.Fits(257, 6), "16 + 4+4 + 4+6 + 6 = 40")
	start := mb.Start()
	require.Equal(t, 40, start)
	buf = buf[:copy(buf, buf[start:])]
	mb.Moved(start)
	mb.Append(257, rec[:6], 1)
	msg, recs = mb.Finish(1, 2, 3)
	assert.Equal(t, uint32(3), recs)
	require.NoError(t, ipfix.CheckMessage(msg))
	assert.Equal(t, buf, msg)
	var ids []uint16
	it := ipfix.Sets(msg)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		ids = append(ids, s.ID)
	}
	require.NoError(t, it.Err())
	assert.Equal(t, []uint16{256, 257}, ids)
}
