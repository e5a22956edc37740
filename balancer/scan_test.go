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

// BenchmarkScan is dispatch's walk of one message (ipfix.Summarize; its
// fuzz test, FuzzSummarize, is in ipfix), with one read's worth of
// generated fullflow messages (1 MiB) cycled through.
func BenchmarkScan(b *testing.B) {
	msgs, c := scanFixture(b, ipfixgen.Fullflow, 0, 1<<20)
	b.ReportAllocs()
	i, records := 0, 0
	for b.Loop() {
		sum, err := ipfix.Summarize(c, 1, msgs[i])
		if err != nil {
			b.Fatal(err)
		}
		records += sum.Records
		if i++; i == len(msgs) {
			i = 0
		}
	}
	if records == 0 {
		b.Fatal("no records")
	}
}
