package ipfix_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func TestRepack(t *testing.T) {
	ft, ct, ot := fullflowTemplate(256), clickTemplate(257), optionsTemplate(258)
	var recs []taggedRecord
	for i := 0; len(recs) < 600; i++ {
		recs = append(recs, taggedRecord{256, fullflowRecord(nil, i)})
		recs = append(recs, taggedRecord{257, clickRecord(nil, i, i%400)})
	}
	// One ~60 KB message with templates and many data sets.
	e := ipfix.NewEncoder(4, 65535)
	e.SetSequenceNumber(1000)
	var bigMsg []byte
	e.SetOutput(func(m []byte) {
		if bigMsg == nil {
			bigMsg = append([]byte(nil), m...)
		}
	})
	e.AddTemplate(ft)
	e.AddTemplate(ct)
	e.AddTemplate(ot)
	n := 0
	for _, r := range recs {
		if err := e.AppendRecord(r.id, r.rec); err != nil {
			t.Fatal(err)
		}
		n++
		if bigMsg != nil {
			break
		}
	}
	require.NotNil(t, bigMsg)
	require.Greater(t, len(bigMsg), 50000)
	n-- // the last record went into the next message

	c := ipfix.NewTemplateCache(0)
	want := decodeAll(t, c, bigMsg)
	require.Len(t, want, n)

	var out [][]byte
	require.NoError(t, ipfix.Repack(bigMsg, c, 1400, func(m []byte) { out = append(out, append([]byte(nil), m...)) }))
	require.Greater(t, len(out), 40)
	seq := uint32(1000)
	for _, m := range out {
		require.LessOrEqual(t, len(m), 1400)
		require.NoError(t, ipfix.CheckMessage(m))
		h, _ := ipfix.ParseHeader(m)
		assert.Equal(t, seq, h.SequenceNumber)
		assert.Equal(t, uint32(4), h.ObservationDomainID)
		k, err := c.RecordCount(m)
		require.NoError(t, err)
		seq += uint32(k)
	}
	assert.Equal(t, uint32(1000+n), seq)
	got := decodeAll(t, ipfix.NewTemplateCache(0), out...)
	require.Equal(t, want, got)

	// Small messages pass unchanged (same bytes).
	var same []byte
	require.NoError(t, ipfix.Repack(out[0], c, 1400, func(m []byte) { same = m }))
	require.Equal(t, &out[0][0], &same[0])
}

func TestRepackTemplatesOnly(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	var ts []*ipfix.Template
	for i := range 100 {
		ts = append(ts, fullflowTemplate(uint16(300+i)))
	}
	msg := mkMessage(1, 0, mkTemplateSet(ts...), mkSet(3, optionsTemplate(600).Record))
	learn(t, c, msg)
	var out [][]byte
	require.NoError(t, ipfix.Repack(msg, c, 512, func(m []byte) { out = append(out, append([]byte(nil), m...)) }))
	fresh := ipfix.NewTemplateCache(0)
	for _, m := range out {
		require.LessOrEqual(t, len(m), 512)
		require.NoError(t, ipfix.CheckMessage(m))
		_, err := fresh.Learn(m, fixedNow)
		require.NoError(t, err)
	}
	assert.Equal(t, 101, fresh.Len())
}

func TestRepackUnknownTemplate(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	learn(t, c, mkMessage(1, 0, mkTemplateSet(fullflowTemplate(256))))
	var fb []byte
	for i := range 30 {
		fb = fullflowRecord(fb, i)
	}
	msg := mkMessage(1, 0, mkSet(256, fb), mkSet(999, make([]byte, 100)), mkSet(998, make([]byte, 2000)))
	var out [][]byte
	err := ipfix.Repack(msg, c, 1400, func(m []byte) { out = append(out, append([]byte(nil), m...)) })
	require.ErrorIs(t, err, ipfix.ErrUnknownTemplate)
	var pe *ipfix.ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, uint16(998), pe.SetID)
	for _, m := range out {
		require.LessOrEqual(t, len(m), 1400)
		require.NoError(t, ipfix.CheckMessage(m))
	}
	assert.Len(t, decodeAllLenient(t, c, out...), 30)
	// The small unknown set is kept whole, the large one dropped.
	assert.Contains(t, string(joinBytes(out...)), string(mkSet(999, make([]byte, 100))))
}
