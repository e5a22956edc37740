package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The polls of a spool run of the sixth session (bench/RESULTS.md, seventh
// session), 50 ms apart: the data was written in 0.30 s, then a segment
// opened with its templates (1,204 bytes) and, half a second later, the
// position file grew by 4 bytes. The span is the data's.
func TestWriteSpanIgnoresTheTail(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 19, 30, 32, 507e6, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pts := []point{
		{at(0), 0}, {at(50), 32910660}, {at(100), 88481479}, {at(150), 162566500},
		{at(200), 237257372}, {at(250), 321613397}, {at(300), 392425659},
		{at(350), 465956409}, {at(400), 465957613}, {at(950), 465957617},
	}
	bytes, seconds, err := writeSpan(pts)
	require.NoError(t, err)
	assert.Equal(t, int64(465956409-32910660), bytes)
	assert.InDelta(t, 0.30, seconds, 1e-9, "from the first poll with data to the one with all of it")

	_, _, err = writeSpan([]point{{at(0), 0}, {at(50), 0}})
	assert.Error(t, err, "nothing written")
}

// dirBytes counts the IPFIX files (dumps and spool segments, closed or being
// written), not a spool's position and lock files.
func TestDirBytesCountsIPFIXFilesOnly(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644))
	}
	write("00000000000000000001_20261203T193032.507000Z_1204.ipfix", 1000)
	write("fullflow_dpi1_20261203T1930.ipfix.part", 200)
	write("position", 4)
	write("position.ack", 96)
	write("lock", 0)
	assert.Equal(t, int64(1200), dirBytes(dir))
}
