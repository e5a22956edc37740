package ipfix_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func TestAppendVarLen(t *testing.T) {
	assert.Equal(t, []byte{0}, ipfix.AppendVarLen(nil, nil))
	assert.Equal(t, joinBytes([]byte{254}, make([]byte, 254)), ipfix.AppendVarLen(nil, make([]byte, 254)))
	assert.Equal(t, joinBytes([]byte{255, 0, 255}, make([]byte, 255)), ipfix.AppendVarLen(nil, make([]byte, 255)))
	assert.Equal(t, joinBytes([]byte{255, 0x10, 0}, make([]byte, 4096)), ipfix.AppendVarLen(nil, make([]byte, 4096)))
	assert.Equal(t, []byte{0, 1, 2}, ipfix.AppendUint(nil, 0x102, 3))
}

func TestEncoderRoundTrip(t *testing.T) {
	ft, ct, ot := fullflowTemplate(256), clickTemplate(257), optionsTemplate(258)
	var recs []taggedRecord
	for i := range 500 {
		recs = append(recs, taggedRecord{256, fullflowRecord(nil, i)})
		recs = append(recs, taggedRecord{257, clickRecord(nil, i, (i*37)%1200)})
		if i%100 == 0 {
			recs = append(recs, taggedRecord{258, joinBytes(be32(1), ipfix.AppendUint(nil, uint64(i), 8), ipfix.AppendUint(nil, uint64(i), 8))})
		}
	}
	for _, maxSize := range []int{1400, 9000, 65535} {
		msgs := encodeAll(t, 3, maxSize, []*ipfix.Template{ft, ct, ot}, recs)
		require.Greater(t, len(msgs), 1)
		seq := uint32(0)
		c := ipfix.NewTemplateCache(0)
		for i, m := range msgs {
			require.LessOrEqual(t, len(m), maxSize)
			require.NoError(t, ipfix.CheckMessage(m))
			h, err := ipfix.ParseHeader(m)
			require.NoError(t, err)
			assert.Equal(t, uint32(3), h.ObservationDomainID)
			assert.Equal(t, uint32(1700000000), h.ExportTime)
			// Sequence numbers count the data records before the message.
			assert.Equal(t, seq, h.SequenceNumber, "message %d", i)
			if i == 0 {
				_, err = c.Learn(m, fixedNow)
				require.NoError(t, err)
			}
			n, err := c.RecordCount(m)
			require.NoError(t, err)
			seq += uint32(n)
		}
		require.Equal(t, uint32(len(recs)), seq)
		got := decodeAll(t, ipfix.NewTemplateCache(0), msgs...)
		require.Len(t, got, len(recs))
		for i, r := range recs {
			require.Equal(t, r.id, got[i].TemplateID)
			// Decoded values re-encode to the same record bytes.
			var re []byte
			tmpl := map[uint16]*ipfix.Template{256: ft, 257: ct, 258: ot}[r.id]
			for j, v := range got[i].Values {
				if tmpl.Fields[j].Length == ipfix.VariableLength {
					re = ipfix.AppendVarLen(re, v)
				} else {
					re = append(re, v...)
				}
			}
			require.Equal(t, r.rec, re, "record %d", i)
		}
	}
}

func TestEncoderErrors(t *testing.T) {
	e := ipfix.NewEncoder(1, 100)
	e.AddTemplate(clickTemplate(257))
	var pe *ipfix.ParseError
	err := e.AppendRecord(300, []byte{1})
	require.ErrorIs(t, err, ipfix.ErrUnknownTemplate)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, uint16(300), pe.TemplateID)
	rec := clickRecord(nil, 1, 10)
	require.ErrorIs(t, e.AppendRecord(257, rec[:len(rec)-1]), ipfix.ErrFieldLength)
	require.ErrorIs(t, e.AppendRecord(257, append(rec, 0)), ipfix.ErrFieldLength)
	require.ErrorIs(t, e.AppendRecord(257, clickRecord(nil, 1, 200)), ipfix.ErrMessageLength)
}

func TestEncoderTemplatesBeforeData(t *testing.T) {
	// A template added mid-stream goes out before the records that use it, and
	// the sequence number continues.
	var msgs [][]byte
	e := ipfix.NewEncoder(1, 1400)
	e.SetOutput(func(m []byte) { msgs = append(msgs, append([]byte(nil), m...)) })
	e.SetSequenceNumber(0xfffffffe)
	e.AddTemplate(fullflowTemplate(256))
	for i := range 3 {
		require.NoError(t, e.AppendRecord(256, fullflowRecord(nil, i)))
	}
	e.AddTemplate(clickTemplate(257))
	require.NoError(t, e.AppendRecord(257, clickRecord(nil, 1, 5)))
	assert.Equal(t, uint32(2), e.SequenceNumber(), "wraps at 2^32")
	e.Flush()
	e.Flush() // nothing open: no message
	require.Len(t, msgs, 1)
	got := decodeAll(t, ipfix.NewTemplateCache(0), msgs...)
	require.Len(t, got, 4)
	require.NoError(t, e.AppendRecord(257, clickRecord(nil, 2, 5)))
	e.Flush()
	require.Len(t, msgs, 2)
	h, _ := ipfix.ParseHeader(msgs[1])
	assert.Equal(t, uint32(2), h.SequenceNumber)
}
