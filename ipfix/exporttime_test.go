package ipfix_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func headerAt(odid, exportTime uint32) []byte {
	b := make([]byte, ipfix.HeaderLen)
	ipfix.PutHeader(b, ipfix.Header{Version: ipfix.Version, Length: ipfix.HeaderLen, ExportTime: exportTime, ObservationDomainID: odid})
	return b
}

func TestExportClockStamp(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	var c ipfix.ExportClock
	assert.Equal(t, uint32(2_000_000_000), c.Stamp(1, now, nil), "nothing received yet: the wall clock")
	c.Observe(headerAt(1, 1000))
	c.Observe(headerAt(2, 500))
	c.Observe(headerAt(1, 1010))
	assert.Equal(t, uint32(1010), c.Stamp(1, now, nil), "the domain's last message")
	assert.Equal(t, uint32(500), c.Stamp(2, now, nil), "each domain has its own")
	follow := map[uint32]uint32{}
	ipfix.FirstExportTimes(follow, append(append(headerAt(1, 1003), headerAt(3, 7)...), headerAt(1, 1001)...))
	assert.Equal(t, map[uint32]uint32{1: 1001, 3: 7}, follow, "the earliest of each domain")
	assert.Equal(t, uint32(1001), c.Stamp(1, now, follow), "never later than the data queued behind")
	assert.Equal(t, uint32(500), c.Stamp(2, now, follow))
	assert.Equal(t, uint32(7), c.Stamp(3, now, follow), "queued data of a domain not observed")
}

func TestExportTimeBefore(t *testing.T) {
	assert.True(t, ipfix.ExportTimeBefore(1, 2))
	assert.False(t, ipfix.ExportTimeBefore(2, 2))
	assert.True(t, ipfix.ExportTimeBefore(0xffff_fff0, 5), "across the 2106 wrap")
	var c ipfix.ExportClock
	c.Observe(headerAt(1, 0xffff_fff0))
	follow := map[uint32]uint32{1: 3}
	assert.Equal(t, uint32(0xffff_fff0), c.Stamp(1, time.Time{}, follow))
}
