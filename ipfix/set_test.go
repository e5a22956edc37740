package ipfix_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// TemplateRecords counts template and options template records (the
// enterprise bit's extra 4 bytes, padding and withdrawals are not records),
// and names a truncated one.
func TestSetTemplateRecords(t *testing.T) {
	ts := mkTemplateSet(fullflowTemplate(256), clickTemplate(257))
	withdrawal := mkSet(ipfix.TemplateSetID, be16(258, 0))
	opts := mkTemplateSet(optionsTemplate(259))
	padded := mkSet(ipfix.TemplateSetID, fullflowTemplate(260).Record, []byte{0, 0, 0, 0})
	data := mkSet(256, make([]byte, 8))
	msg := mkMessage(1, 0, ts, withdrawal, opts, padded, data)
	var got []int
	it := ipfix.Sets(msg)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		n, err := s.TemplateRecords()
		require.NoError(t, err)
		got = append(got, n)
	}
	require.NoError(t, it.Err())
	assert.Equal(t, []int{2, 0, 1, 1, 0}, got)

	cut := fullflowTemplate(261).Record
	cut = cut[:len(cut)-2]
	it = ipfix.Sets(mkMessage(1, 0, ts, mkSet(ipfix.TemplateSetID, clickTemplate(262).Record, cut)))
	it.Next()
	s, ok := it.Next()
	require.True(t, ok)
	n, err := s.TemplateRecords()
	assert.Equal(t, 1, n)
	var pe *ipfix.ParseError
	require.True(t, errors.As(err, &pe), "err %v", err)
	assert.ErrorIs(t, err, ipfix.ErrTemplate)
	assert.Equal(t, uint16(261), pe.TemplateID)
}
