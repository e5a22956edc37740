package testenv

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// AgeCapture rewrites the IPFIX file (RFC 5655) at path as if it had been
// captured in the past: message i gets export time first + i/perSecond, so the
// export time goes on growing from first, as an exporter's clock does. It
// returns the number of messages. Tests use it to replay a capture whose clock
// is hours behind ours.
func AgeCapture(t testing.TB, path string, first uint32, perSecond int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	n := 0
	for off := 0; off < len(b); n++ {
		size, err := ipfix.FrameLength(b[off:])
		if err != nil || size == 0 {
			t.Fatalf("testenv: %s: message at offset %d: %v", path, off, err)
		}
		binary.BigEndian.PutUint32(b[off+4:off+8], first+uint32(n/max(perSecond, 1)))
		off += size
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return n
}
