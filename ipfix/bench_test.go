package ipfix_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// benchMessages encodes n records of one template into messages of maxSize.
func benchMessages(b *testing.B, t *ipfix.Template, maxSize, n int, rec func(dst []byte, i int) []byte) [][]byte {
	var recs []taggedRecord
	for i := range n {
		recs = append(recs, taggedRecord{t.ID, rec(nil, i)})
	}
	return encodeAll(b, 1, maxSize, []*ipfix.Template{t}, recs)
}

func BenchmarkFrameLength(b *testing.B) {
	msgs := benchMessages(b, fullflowTemplate(256), 1400, 20000, fullflowRecord)
	var stream []byte
	for _, m := range msgs[1 : len(msgs)-1] {
		stream = append(stream, m...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for buf := stream; len(buf) > 0; {
			l, err := ipfix.FrameLength(buf)
			if err != nil || l == 0 {
				b.Fatal(l, err)
			}
			buf = buf[l:]
			n++
		}
		if n != len(msgs)-2 {
			b.Fatal(n)
		}
	}
}

func BenchmarkCheckMessage(b *testing.B) {
	msg := benchMessages(b, fullflowTemplate(256), 1400, 100, fullflowRecord)[1]
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ipfix.CheckMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecode(b *testing.B, t *ipfix.Template, msg []byte) {
	c := ipfix.NewTemplateCache(0)
	c.Add(1, t, fixedNow)
	d := ipfix.NewDecoder(c)
	var n int
	var sum uint64
	fn := func(r *ipfix.Record) error {
		n++
		sum += r.Values[0].Uint()
		return nil
	}
	if err := d.Decode(msg, fixedNow, fn); err != nil {
		b.Fatal(err)
	}
	perMsg := n
	n = 0
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		before := n
		if err := d.Decode(msg, fixedNow, fn); err != nil {
			b.Fatal(err)
		}
		if n-before != perMsg {
			b.Fatal(n - before)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(perMsg), "records/msg")
}

// BenchmarkDecodeFullflow decodes messages of 40 fullflow-like records (28
// fixed-length fields: 25 IANA, 3 DPI).
func BenchmarkDecodeFullflow(b *testing.B) {
	t := fullflowTemplate(256)
	var body []byte
	for i := range 40 {
		body = fullflowRecord(body, i)
	}
	benchDecode(b, t, mkMessage(1, 0, mkSet(256, body)))
}

// BenchmarkDecodeClickstream decodes a 1400-byte message of clickstream-like
// records (variable-length fields).
func BenchmarkDecodeClickstream(b *testing.B) {
	t := clickTemplate(257)
	msg := benchMessages(b, t, 1400, 200, func(dst []byte, i int) []byte { return clickRecord(dst, i, 20+i%60) })[1]
	benchDecode(b, t, msg)
}

func BenchmarkTemplateLearn(b *testing.B) {
	ts := []*ipfix.Template{fullflowTemplate(256), clickTemplate(257), optionsTemplate(258)}
	msg := mkMessage(1, 0, mkTemplateSet(ts[:2]...), mkTemplateSet(ts[2]))
	b.Run("refresh", func(b *testing.B) {
		// UDP exporters re-send the same templates: no allocation.
		c := ipfix.NewTemplateCache(30 * time.Minute)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if had, err := c.Learn(msg, fixedNow); err != nil || !had {
				b.Fatal(had, err)
			}
		}
	})
	b.Run("new", func(b *testing.B) {
		// Alternate two definitions of each id: every record is parsed.
		alt := mkMessage(1, 0, mkTemplateSet(clickTemplate(256), fullflowTemplate(257)), mkTemplateSet(ipfix.NewOptionsTemplate(258, 1, []ipfix.FieldSpecifier{fieldIANA(149, 4)})))
		c := ipfix.NewTemplateCache(0)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := msg
			if i&1 == 1 {
				m = alt
			}
			i++
			if _, err := c.Learn(m, fixedNow); err != nil || c.Len() != 3 {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRepack(b *testing.B) {
	t := fullflowTemplate(256)
	msg := benchMessages(b, t, 65535, 2000, fullflowRecord)[0]
	c := ipfix.NewTemplateCache(0)
	if _, err := c.Learn(msg, fixedNow); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := ipfix.Repack(msg, c, 1400, func([]byte) { n++ }); err != nil || n < 40 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkDecodeTestdata decodes every message of each golden file (one
// template family each) with templates already learned.
func BenchmarkDecodeTestdata(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.ipfix"))
	if len(files) == 0 {
		b.Fatal("no testdata/*.ipfix files")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(filepath.Base(file), ".ipfix"), func(b *testing.B) {
			var msgs [][]byte
			for rest := data; len(rest) > 0; {
				n, err := ipfix.FrameLength(rest)
				if err != nil || n == 0 {
					b.Fatal(n, err)
				}
				msgs = append(msgs, rest[:n])
				rest = rest[n:]
			}
			d := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
			n := 0
			fn := func(*ipfix.Record) error { n++; return nil }
			for _, m := range msgs {
				if err := d.Decode(m, fixedNow, fn); err != nil {
					b.Fatal(err)
				}
			}
			perFile := n
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				before := n
				for _, m := range msgs {
					if err := d.Decode(m, fixedNow, fn); err != nil {
						b.Fatal(err)
					}
				}
				if n-before != perFile {
					b.Fatal(n - before)
				}
			}
			b.ReportMetric(float64(n-perFile)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkRecordCountFullflow counts the records of 1400-byte data sets of the
// generator's fullflow template (two variable-length fields, so every record is
// walked): the per-message cost the balancer pays for sequence numbers.
func BenchmarkRecordCountFullflow(b *testing.B) {
	g, err := dpisim.New(dpisim.Fullflow, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	t := g.Templates()[0]
	var bodies [][]byte
	var want []int
	// 48 K bodies (~60 MB): walked in turn they come from memory, as a read
	// buffer the kernel just filled does, not from the L1 cache.
	for range 48 << 10 {
		var body []byte
		n := 0
		for len(body) < 1400-16-4-100 {
			_, body = g.Next(body)
			n++
		}
		bodies = append(bodies, body)
		want = append(want, n)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % len(bodies)
		n, err := t.RecordCount(bodies[k])
		if err != nil || n != want[k] {
			b.Fatal(n, want[k], err)
		}
		i++
	}
}

// BenchmarkEncoder frames fullflow records into 1400-byte messages.
func BenchmarkEncoder(b *testing.B) {
	t := fullflowTemplate(256)
	rec := fullflowRecord(nil, 1)
	e := ipfix.NewEncoder(1, 1400)
	e.AddTemplate(t)
	n := 0
	e.SetOutput(func([]byte) { n++ })
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if err := e.AppendRecord(t.ID, rec); err != nil {
			b.Fatal(err)
		}
	}
	e.Flush()
	if n == 0 {
		b.Fatal("no message")
	}
}

// BenchmarkAppendTemplateMessages builds the template messages of a domain
// with 40 templates into 1400-byte messages (a UDP re-send).
func BenchmarkAppendTemplateMessages(b *testing.B) {
	c := ipfix.NewTemplateCache(0)
	for i := range 20 {
		c.Add(1, fullflowTemplate(uint16(256+2*i)), fixedNow)
		c.Add(1, clickTemplate(uint16(257+2*i)), fixedNow)
	}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = c.AppendTemplateMessages(dst[:0], 1, 0, 0, 1400)
		if len(dst) == 0 {
			b.Fatal("no message")
		}
	}
	b.SetBytes(int64(len(dst)))
}
