//go:build unix

package forward

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// Slices adjacent in memory become one iovec; others stay apart, and the bytes
// are the same as appending each.
func TestAppendRun(t *testing.T) {
	read := []byte("0123456789abcdefghij")
	other := []byte("XYZ")
	var bufs [][]byte
	bufs = AppendRun(bufs, read[0:4])
	bufs = AppendRun(bufs, read[4:10])  // follows: merged
	bufs = AppendRun(bufs, other)       // elsewhere: new
	bufs = AppendRun(bufs, read[10:12]) // not after other: new
	bufs = AppendRun(bufs, read[12:12]) // empty: kept apart, harmless
	bufs = AppendRun(bufs, read[15:20]) // a gap: new
	require.Len(t, bufs, 5)
	require.Equal(t, "0123456789", string(bufs[0]))
	require.Equal(t, "0123456789XYZabfghij", string(bytes.Join(bufs, nil)))

	// A slice whose capacity ends where it does is never extended past it.
	a := read[0:4:4]
	bufs = AppendRun(bufs[:0], a)
	bufs = AppendRun(bufs, read[4:8])
	require.Len(t, bufs, 2)
}
