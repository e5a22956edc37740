package dump_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
)

// FuzzNames: the loader and the spool parse every name they find in their
// directories; any name either is refused with an error or parses to a value
// whose own name parses back to it.
func FuzzNames(f *testing.F) {
	at := time.Date(2026, 11, 22, 10, 3, 0, 123456000, time.UTC)
	n := dump.NewInstanceID("abc234").Name("http_reply", 3, at.Truncate(5*time.Minute), at)
	f.Add(n.String())
	f.Add(n.Part())
	f.Add("fullflow_0_20261122T100000Z_3.ipfix")
	f.Add(dump.Segment{Seq: 7, Opened: at, Prime: 120}.String())
	f.Fuzz(func(t *testing.T, base string) {
		if n, err := dump.Parse(base); err == nil && !n.Legacy() {
			back, err := dump.Parse(n.String())
			require.NoError(t, err, "%q parsed as %q, which does not parse", base, n.String())
			require.Equal(t, n, back)
		}
		if n, err := dump.ParsePart(base); err == nil && !n.Legacy() {
			back, err := dump.ParsePart(n.Part())
			require.NoError(t, err)
			require.Equal(t, n, back)
		}
		if s, err := dump.ParseSegment(base); err == nil {
			back, err := dump.ParseSegment(s.String())
			require.NoError(t, err, "%q parsed as %q, which does not parse", base, s.String())
			require.Equal(t, s, back)
		}
	})
}
