package ipfix_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// pairMessages encodes records of a stream's templates (IPv4 and IPv6 mixed
// in the given share) into messages of at most 1400 bytes, and learns their
// templates.
func pairMessages(tb testing.TB, stream dpisim.Stream, records int, ipv6Share float64) (*ipfix.TemplateCache, [][]byte) {
	g, err := dpisim.New(stream, 1, ipv6Share)
	require.NoError(tb, err)
	var recs []taggedRecord
	for range records {
		id, rec := g.Next(nil)
		recs = append(recs, taggedRecord{id, rec})
	}
	msgs := encodeAll(tb, 7, 1400, g.Templates(), recs)
	c := ipfix.NewTemplateCache(0)
	for _, m := range msgs {
		_, err := c.Learn(m, time.Now())
		require.NoError(tb, err)
	}
	return c, msgs
}

// SummarizePair agrees with Summarize on every pair it takes, whole or damaged
// (any byte, length octets of 255, truncation), and takes the usual DPI
// message.
func TestSummarizePairAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, stream := range dpisim.Streams() {
		share := 0.3
		if stream == dpisim.Fullflow {
			share = 0 // one data set per message, as ipfix-gen sends by default
		}
		c, msgs := pairMessages(t, stream, 3000, share)
		taken := 0
		check := func(a, b []byte) {
			sa, sb, ok := ipfix.SummarizePair(c, 7, a, 7, b)
			if !ok {
				return
			}
			taken++
			wa, errA := ipfix.Summarize(c, 7, a)
			wb, errB := ipfix.Summarize(c, 7, b)
			require.NoError(t, errA, "%s: a pair Summarize refuses", stream)
			require.NoError(t, errB, "%s: a pair Summarize refuses", stream)
			require.Equal(t, wa, sa, stream)
			require.Equal(t, wb, sb, stream)
		}
		for i := 0; i+1 < len(msgs); i++ {
			check(msgs[i], msgs[i+1])
			for range 8 {
				a := append([]byte(nil), msgs[i]...)
				b := append([]byte(nil), msgs[i+1]...)
				a[16+rng.IntN(len(a)-16)] = byte(rng.IntN(256))
				b[16+rng.IntN(len(b)-16)] = 255
				check(a, b)
				check(b, a)
				// Shorter, its header and set lengths made to match.
				k := 20 + rng.IntN(len(a)-20)
				short := append([]byte(nil), a[:k]...)
				short[2], short[3] = byte(k>>8), byte(k)
				short[18], short[19] = byte((k-16)>>8), byte(k-16)
				check(short, b)
				check(b, short)
			}
		}
		if stream == dpisim.Fullflow {
			require.Greater(t, taken, len(msgs), "fullflow: the usual message is summarized in pairs")
		}
	}
}

// BenchmarkSummarizePair: two fullflow messages by SummarizePair against two
// Summarize calls, over ~1 MB of messages (a read buffer's worth).
func BenchmarkSummarizePair(b *testing.B) {
	c, msgs := pairMessages(b, dpisim.Fullflow, 8000, 0)
	msgs = msgs[1:] // the template message
	b.Run("single", func(b *testing.B) {
		i := 0
		for b.Loop() {
			sa, _ := ipfix.Summarize(c, 7, msgs[i])
			sb, _ := ipfix.Summarize(c, 7, msgs[i+1])
			if sa.Records == 0 || sb.Records == 0 {
				b.Fatal("no records")
			}
			i = (i + 2) % (len(msgs) - 2)
		}
	})
	b.Run("pair", func(b *testing.B) {
		i := 0
		for b.Loop() {
			sa, sb, ok := ipfix.SummarizePair(c, 7, msgs[i], 7, msgs[i+1])
			if !ok || sa.Records == 0 || sb.Records == 0 {
				b.Fatal("not paired")
			}
			i = (i + 2) % (len(msgs) - 2)
		}
	})
}

// FuzzSummarizePair: on any two messages, SummarizePair either declines or
// gives exactly what Summarize gives for each.
func FuzzSummarizePair(f *testing.F) {
	c, msgs := pairMessages(f, dpisim.Fullflow, 200, 0)
	for i := 0; i+1 < len(msgs) && i < 8; i++ {
		f.Add(msgs[i], msgs[i+1])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		sa, sb, ok := ipfix.SummarizePair(c, 7, a, 7, b)
		if !ok {
			return
		}
		wa, errA := ipfix.Summarize(c, 7, a)
		require.NoError(t, errA, "a pair Summarize refuses")
		require.Equal(t, wa, sa)
		wb, errB := ipfix.Summarize(c, 7, b)
		require.NoError(t, errB, "a pair Summarize refuses")
		require.Equal(t, wb, sb)
	})
}
