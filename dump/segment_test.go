package dump

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSegmentName(t *testing.T) {
	s := Segment{Seq: 42, Opened: time.Date(2026, 12, 3, 11, 0, 0, 123456000, time.UTC), Prime: 68}
	assert.Equal(t, "00000000000000000042_20261203T110000.123456Z_68.ipfix", s.String())
	got, err := ParseSegment(s.String())
	require.NoError(t, err)
	assert.Equal(t, s, got)
	// A dump name is no segment name, and the other way round.
	_, err = ParseSegment("fullflow_0_20261203T110000Z.ipfix")
	require.Error(t, err)
	_, err = Parse(s.String())
	require.Error(t, err)
	assert.Equal(t, "fullflow_0", SpoolName("fullflow", 0, ""))
	assert.Equal(t, "fullflow_1_10.0.0.2_9920", SpoolName("fullflow", 1, "10.0.0.2:9920"))
	assert.Equal(t, "dnsflow_0_fd00__2_9920_udp", SpoolName("dnsflow", 0, "[fd00::2]:9920/udp"))
	assert.Equal(t, filepath.Join("r", "fullflow_0"), SpoolDir("r", "fullflow", 0, ""))
}

func TestCutTail(t *testing.T) {
	// Two messages of 20 bytes (header + an empty-bodied set), then 7 bytes
	// of a third.
	msg := []byte{0, 10, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 4}
	var b []byte
	b = append(b, msg...)
	b = append(b, msg...)
	b = append(b, msg[:7]...)
	path := filepath.Join(t.TempDir(), "x.ipfix")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	n, cut, err := CutTail(path, 20)
	require.NoError(t, err)
	assert.True(t, cut)
	assert.Equal(t, int64(1), n, "messages from offset 20 on")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(40), fi.Size())
	n, cut, err = CutTail(path, 0)
	require.NoError(t, err)
	assert.False(t, cut)
	assert.Equal(t, int64(2), n)
}
