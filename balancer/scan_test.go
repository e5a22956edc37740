package balancer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ipfixgen "github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// scanFixture is a stream of generated messages (templates first) and a cache
// that knows their templates.
func scanFixture(tb testing.TB, stream ipfixgen.Stream, ipv6Share float64, bytes int) ([][]byte, *ipfix.TemplateCache) {
	tb.Helper()
	g, err := ipfixgen.New(stream, 1, ipv6Share)
	require.NoError(tb, err)
	enc := ipfix.NewEncoder(1, 1400)
	var msgs [][]byte
	total := 0
	enc.SetOutput(func(m []byte) {
		msgs = append(msgs, append([]byte(nil), m...))
		total += len(m)
	})
	c := ipfix.NewTemplateCache(0)
	for _, t := range g.Templates() {
		enc.AddTemplate(t)
		c.Add(1, t, time.Now())
	}
	rec := make([]byte, 0, 4096)
	for total < bytes {
		id, r := g.Next(rec[:0])
		require.NoError(tb, enc.AppendRecord(id, r))
	}
	enc.Flush()
	return msgs, c
}

// FuzzScan: scan reads set headers in place and hands anything odd to
// scanSets; both must give the same answer for any input.
func FuzzScan(f *testing.F) {
	c := ipfix.NewTemplateCache(0)
	for _, s := range []ipfixgen.Stream{ipfixgen.Fullflow, ipfixgen.Clickstream, ipfixgen.DNSFlow} {
		msgs, cs := scanFixture(f, s, 0.3, 8<<10)
		for _, m := range msgs {
			f.Add(m)
		}
		for _, t := range cs.Templates(1) {
			c.Add(1, t, time.Now())
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s1, e1 := scan(c, 1, msg)
		s2, e2 := scanSets(c, 1, msg)
		if e2 != nil {
			require.Error(t, e1)
			require.Equal(t, e2.Error(), e1.Error())
			return
		}
		require.NoError(t, e1)
		require.Equal(t, s2, s1)
	})
}

// BenchmarkScan is dispatch's walk of one message, with one read's worth of
// generated fullflow messages (1 MiB) cycled through.
func BenchmarkScan(b *testing.B) {
	msgs, c := scanFixture(b, ipfixgen.Fullflow, 0, 1<<20)
	b.ReportAllocs()
	i, records := 0, 0
	for b.Loop() {
		sum, err := scan(c, 1, msgs[i])
		if err != nil {
			b.Fatal(err)
		}
		records += sum.records
		if i++; i == len(msgs) {
			i = 0
		}
	}
	if records == 0 {
		b.Fatal("no records")
	}
}
