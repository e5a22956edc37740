package dump_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
)

var window = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestNameRoundTrip(t *testing.T) {
	in := dump.NewInstance()
	require.Regexp(t, `^[a-z2-7]{6}$`, in.ID())
	at := window.Add(3*time.Minute + 123456789*time.Nanosecond)
	seen := map[string]bool{}
	// Every name the recorder makes: streams with underscores, DPIs up to
	// 65535, several dumps opened in the same microsecond (rotate_records),
	// open times in a later day than their window.
	for _, stream := range []string{"fullflow", "http_reply", "x9_1", "7up"} {
		for _, dpi := range []int{0, 1, 12, 65535} {
			for i := range 3 {
				for _, now := range []time.Time{at, at.Add(25 * time.Hour)} {
					n := in.Name(stream, dpi, window, now)
					s := n.String()
					assert.False(t, seen[s], "name %s made twice", s)
					seen[s] = true
					got, err := dump.Parse(s)
					require.NoError(t, err, "iteration %d", i)
					assert.Equal(t, n, got, s)
					assert.False(t, got.Legacy())
					p, err := dump.ParsePart(n.Part())
					require.NoError(t, err)
					assert.Equal(t, n, p)
				}
			}
		}
	}
	n := dump.NewInstanceID("abc234").Name("fullflow", 3, window, at)
	assert.Equal(t, "fullflow_3_20261122T100000Z_20261122T100300.123456Z_abc234.ipfix", n.String())
}

func TestNameInstancesDiffer(t *testing.T) {
	a, b := dump.NewInstance(), dump.NewInstance()
	// 30 random bits: equal ids are a one in a billion event.
	assert.NotEqual(t, a.ID(), b.ID())
	na := a.Name("fullflow", 0, window, window)
	nb := b.Name("fullflow", 0, window, window)
	assert.NotEqual(t, na.String(), nb.String())
}

// Names written by older versions stay loadable.
func TestNameLegacy(t *testing.T) {
	f := func(s string, seq int) {
		t.Helper()
		n, err := dump.Parse(s)
		require.NoError(t, err, s)
		assert.True(t, n.Legacy(), s)
		assert.Equal(t, "fullflow", n.Stream)
		assert.Equal(t, 2, n.DPI)
		assert.Equal(t, window, n.Window)
		assert.Equal(t, seq, n.Seq())
		assert.Equal(t, s, n.String(), "round trip")
	}
	f("fullflow_2_20261122T100000Z.ipfix", 0)
	f("fullflow_2_20261122T100000Z_1.ipfix", 1)
	f("fullflow_2_20261122T100000Z_12.ipfix", 12)
	f("fullflow_2_20261122T100000Z_r1.ipfix", 1)
	f("fullflow_2_20261122T100000Z-b.ipfix", 0)
	f("fullflow_2_20261122T100000Z.x1.ipfix", 0)
}

func TestNameBad(t *testing.T) {
	f := func(s string) {
		t.Helper()
		_, err := dump.Parse(s)
		assert.Error(t, err, s)
	}
	f("")
	f("fullflow.ipfix")
	f("fullflow_0_20261122T100000Z.ipfix.part")
	f("fullflow_0_20261122T100000Z")
	f("Fullflow_0_20261122T100000Z.ipfix")
	f("fullflow_99999_20261122T100000Z.ipfix")
	f("fullflow_0_20261322T100000Z.ipfix")
	f("fullflow_0_20261122T100000Z_20261122T100300.123456Z.ipfix")
	f("fullflow_0_20261122T100000Z_20261122T100300.123456Z_ABC234.ipfix")
	f("fullflow_0_20261122T100000Z_20261122T100300.123Z_abc234.ipfix")
	f("fullflow_0_20261122T100000Z_x.ipfix")
	_, err := dump.ParsePart("fullflow_0_20261122T100000Z.ipfix")
	assert.Error(t, err)
}

func TestCompare(t *testing.T) {
	in := dump.NewInstanceID("aaaaaa")
	p := func(s string) dump.Name { n, err := dump.Parse(s); require.NoError(t, err); return n }
	want := []dump.Name{
		p("fullflow_0_20261122T095000Z_3.ipfix"),
		p("fullflow_0_20261122T100000Z.ipfix"),
		p("fullflow_0_20261122T100000Z_1.ipfix"),
		p("fullflow_0_20261122T100000Z_r2.ipfix"),
		in.Name("fullflow", 0, window, window.Add(time.Second)),
		in.Name("fullflow", 0, window, window.Add(time.Second)),
		in.Name("fullflow", 0, window.Add(10*time.Minute), window.Add(time.Second)),
	}
	for i := 1; i < len(want); i++ {
		assert.Negative(t, dump.Compare(want[i-1], want[i]), "%s < %s", want[i-1], want[i])
		assert.Positive(t, dump.Compare(want[i], want[i-1]))
	}
}
