package ipfix

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// summaryFixture is one message with a template set, an options template set,
// three data records and one options data record, and a cache that knows both
// templates.
func summaryFixture(tb testing.TB) ([]byte, *TemplateCache) {
	tb.Helper()
	data := NewTemplate(256, []FieldSpecifier{{ID: 1, Length: 8}, {ID: 8, Length: 4}})
	opts := NewOptionsTemplate(257, 1, []FieldSpecifier{{ID: 144, Length: 4}, {ID: 41, Length: 8}})
	var msgs [][]byte
	enc := NewEncoder(1, 1400)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, bytes.Clone(m)) })
	enc.AddTemplate(data)
	enc.AddTemplate(opts)
	for i := range 3 {
		require.NoError(tb, enc.AppendRecord(256, AppendUint(AppendUint(nil, uint64(i), 8), 0x0a000001, 4)))
	}
	require.NoError(tb, enc.AppendRecord(257, AppendUint(AppendUint(nil, 7, 4), 1000, 8)))
	enc.Flush()
	require.Len(tb, msgs, 1)
	c := NewTemplateCache(0)
	_, err := c.Learn(msgs[0], time.Now())
	require.NoError(tb, err)
	return msgs[0], c
}

func TestSummarize(t *testing.T) {
	msg, c := summaryFixture(t)
	sum, err := Summarize(c, 1, msg)
	require.NoError(t, err)
	assert.Equal(t, 4, sum.Records, "records")
	assert.Equal(t, 1, sum.OptionRecords, "options data records")
	assert.Equal(t, 2, sum.DataSets, "data sets")
	assert.Zero(t, sum.Unknown, "unknown")
	require.Positive(t, sum.TemplateSets, "template sets")
	assert.Equal(t, HeaderLen, sum.TemplateStart, "the template sets come first")
	it := Sets(msg)
	end := 0
	for set, ok := it.Next(); ok; set, ok = it.Next() {
		if set.ID == TemplateSetID || set.ID == OptionsTemplateSetID {
			end = set.Offset + SetHeaderLen + len(set.Body)
		}
	}
	require.NoError(t, it.Err())
	assert.Equal(t, end, sum.TemplateEnd, "end of the last template set")

	// Another domain: the data sets are unknown, and counted as such.
	sum, err = Summarize(c, 2, msg)
	require.NoError(t, err)
	assert.Equal(t, Summary{DataSets: 2, Unknown: 2, TemplateSets: sum.TemplateSets, TemplateStart: HeaderLen, TemplateEnd: end}, sum)

	// A set longer than the message: the error of SetIterator, which says where.
	bad := bytes.Clone(msg)
	binary.BigEndian.PutUint16(bad[HeaderLen+2:], uint16(len(bad)))
	_, err = Summarize(c, 1, bad)
	require.ErrorIs(t, err, ErrSetLength)
	assert.Contains(t, err.Error(), "offset 16")
}

// FuzzSummarize: Summarize reads set headers in place and hands anything odd
// to summarizeSets; both must give the same answer for any input.
func FuzzSummarize(f *testing.F) {
	msg, c := summaryFixture(f)
	f.Add(msg)
	f.Fuzz(func(t *testing.T, msg []byte) {
		s1, e1 := Summarize(c, 1, msg)
		s2, e2 := summarizeSets(c, 1, msg)
		if e2 != nil {
			require.Error(t, e1)
			require.Equal(t, e2.Error(), e1.Error())
			return
		}
		require.NoError(t, e1)
		require.Equal(t, s2, s1)
	})
}
