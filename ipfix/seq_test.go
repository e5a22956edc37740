package ipfix_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func TestSequenceTracker(t *testing.T) {
	var s ipfix.SequenceTracker
	type obs struct {
		odid, seq  uint32
		records    int
		lost       uint64
		outOfOrder bool
	}
	steps := []obs{
		{1, 100, 10, 0, false}, // first message: nothing to compare
		{1, 110, 5, 0, false},  // in order
		{2, 7, 1, 0, false},    // another domain is independent
		{1, 120, 5, 5, false},  // gap of 5 records
		{1, 115, 5, 0, true},   // the late message
		{1, 125, 0, 0, false},  // template-only message: 0 records
		{1, 125, 3, 0, false},
		{2, 8, 1, 0, false},
	}
	for i, o := range steps {
		lost, ooo := s.Observe(o.odid, o.seq, o.records)
		assert.Equal(t, o.lost, lost, "step %d", i)
		assert.Equal(t, o.outOfOrder, ooo, "step %d", i)
	}
	assert.Equal(t, uint64(5), s.Lost())
	assert.Equal(t, uint64(1), s.OutOfOrder())
}

func TestSequenceTrackerWraparound(t *testing.T) {
	var s ipfix.SequenceTracker
	s.Observe(1, 0xfffffff0, 0x10) // next is 2^32 = 0
	lost, ooo := s.Observe(1, 0, 5)
	assert.Zero(t, lost)
	assert.False(t, ooo)
	lost, ooo = s.Observe(1, 10, 1) // gap of 5 across nothing
	assert.Equal(t, uint64(5), lost)
	assert.False(t, ooo)
	// An old message from before the wrap is out of order, not a 4-billion gap.
	lost, ooo = s.Observe(1, 0xfffffff8, 1)
	assert.Zero(t, lost)
	assert.True(t, ooo)
	// A gap spanning the wrap.
	s.Observe(2, 0xfffffffe, 1)
	lost, _ = s.Observe(2, 3, 1)
	assert.Equal(t, uint64(4), lost)
	assert.Equal(t, uint64(9), s.Lost())
}

func TestSequenceTrackerRestart(t *testing.T) {
	var s ipfix.SequenceTracker
	s.Observe(1, 50_000_000, 10)
	lost, ooo := s.Observe(1, 0, 10) // exporter restarted its numbering
	assert.Zero(t, lost)
	assert.False(t, ooo)
	assert.Equal(t, uint64(1), s.Resets())
	lost, _ = s.Observe(1, 10, 1)
	assert.Zero(t, lost)
}
