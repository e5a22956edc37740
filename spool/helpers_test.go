package spool

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

var (
	tmplA = ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 8, Length: 4}, {ID: 1, Length: 8}})
	tmplB = ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}, {ID: 4, Length: 1}})
)

// stream is an exporter's message stream: two domains, data messages whose
// records carry the message index in octetDeltaCount, and every redefineEvery
// messages a withdrawal and a redefinition of template 256 in one domain.
type stream struct {
	msgs  [][]byte
	tmpls [][]byte // the record of template 256 of the message's domain in force, for data messages
}

func tmplMessage(odid, et uint32, ts ...*ipfix.Template) []byte {
	var out []byte
	e := ipfix.NewEncoder(odid, 0)
	e.SetExportTime(et)
	e.SetOutput(func(m []byte) { out = append(out, m...) })
	for _, t := range ts {
		e.AddTemplate(t)
	}
	e.Flush()
	return out
}

func withdrawMessage(odid, et uint32, id uint16) []byte {
	m := make([]byte, ipfix.HeaderLen, ipfix.HeaderLen+8)
	ipfix.PutHeader(m, ipfix.Header{Version: ipfix.Version, Length: ipfix.HeaderLen + 8, ExportTime: et, ObservationDomainID: odid})
	m = binary.BigEndian.AppendUint16(m, ipfix.TemplateSetID)
	m = binary.BigEndian.AppendUint16(m, 8)
	m = binary.BigEndian.AppendUint16(m, id)
	return binary.BigEndian.AppendUint16(m, 0)
}

func dataMessage(odid, et, seq uint32, t *ipfix.Template, idx uint64, records int) []byte {
	var out []byte
	e := ipfix.NewEncoder(odid, 0)
	e.SetExportTime(et)
	e.SetSequenceNumber(seq)
	e.SetOutput(func(m []byte) { out = append(out, m...) })
	e.AddTemplate(t) // written first; stripTemplates removes it
	var rec []byte
	for i := 0; i < records; i++ {
		rec = rec[:0]
		if t == tmplA {
			rec = append(rec, 10, 0, 0, byte(i))
			rec = binary.BigEndian.AppendUint64(rec, idx)
		} else {
			rec = binary.BigEndian.AppendUint64(rec, idx)
			rec = binary.BigEndian.AppendUint64(rec, uint64(i))
			rec = append(rec, 6)
		}
		if err := e.AppendRecord(t.ID, rec); err != nil {
			panic(err)
		}
	}
	e.Flush()
	// Drop the template set the encoder put first.
	return stripTemplates(out)
}

// stripTemplates removes the template sets of a single message.
func stripTemplates(m []byte) []byte {
	out := append([]byte(nil), m[:ipfix.HeaderLen]...)
	it := ipfix.Sets(m)
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		if s.ID >= ipfix.MinDataSetID {
			out = binary.BigEndian.AppendUint16(out, s.ID)
			out = binary.BigEndian.AppendUint16(out, uint16(len(s.Body)+4))
			out = append(out, s.Body...)
		}
	}
	binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
	return out
}

// makeStream returns n messages starting with the templates of both domains.
func makeStream(n, redefineEvery, records int) *stream {
	st := &stream{}
	cur := map[uint32]*ipfix.Template{1: tmplA, 2: tmplA}
	seq := map[uint32]uint32{}
	et := uint32(1_700_000_000)
	add := func(m []byte, tm []byte) {
		st.msgs = append(st.msgs, m)
		st.tmpls = append(st.tmpls, tm)
	}
	add(tmplMessage(1, et, tmplA), nil)
	add(tmplMessage(2, et, tmplA), nil)
	for i := 2; len(st.msgs) < n; i++ {
		odid := uint32(1 + i%2)
		if i%10 == 0 {
			et++
		}
		if redefineEvery > 0 && i%redefineEvery == 0 {
			next := tmplB
			if cur[odid] == tmplB {
				next = tmplA
			}
			cur[odid] = next
			add(withdrawMessage(odid, et, 256), nil)
			add(tmplMessage(odid, et, next), nil)
			continue
		}
		add(dataMessage(odid, et, seq[odid], cur[odid], uint64(len(st.msgs)), records), cur[odid].Record)
		seq[odid] += uint32(records)
	}
	st.msgs, st.tmpls = st.msgs[:n], st.tmpls[:n]
	return st
}

func openSpool(tb testing.TB, cfg Config) (*Spool, *metrics.Set) {
	tb.Helper()
	set := metrics.NewSet()
	s, err := New(cfg, `stream="fullflow",dpi="0",subreceiver="test"`, set, nil)
	require.NoError(tb, err)
	s.Run()
	tb.Cleanup(func() { _ = s.Close() })
	return s, set
}

// replayed is what a consumer got: the original messages in order, and for
// each the template record of 256 of its domain it had learned before it.
type replayed struct {
	msgs  [][]byte
	tmpls [][]byte
}

// drain pulls messages until want spooled messages came or the deadline
// passed, acknowledging every ackEvery; it learns templates as a collector would.
func drain(tb testing.TB, s *Spool, want int, ackEvery int, timeout time.Duration) *replayed {
	tb.Helper()
	r := &replayed{}
	cache := ipfix.NewTemplateCache(0)
	deadline := time.After(timeout)
	var last Message
	pending := 0
	for len(r.msgs) < want {
		m, ok := s.Next()
		if !ok {
			if pending > 0 {
				s.Ack(last)
				pending = 0
			}
			select {
			case <-deadline:
				tb.Fatalf("drain: got %d of %d messages before the deadline", len(r.msgs), want)
			case <-time.After(time.Millisecond):
			}
			continue
		}
		r.add(cache, m)
		last, pending = m, pending+1
		if pending >= ackEvery {
			s.Ack(last)
			pending = 0
		}
	}
	if pending > 0 {
		s.Ack(last)
	}
	return r
}

// add learns the templates m carries and, for a message of data, keeps it with
// the template 256 in force for its domain.
func (r *replayed) add(cache *ipfix.TemplateCache, m Message) {
	for b := m.Bytes; len(b) >= ipfix.HeaderLen; {
		n := int(binary.BigEndian.Uint16(b[2:4]))
		_, _ = cache.Learn(b[:n], time.Time{})
		b = b[n:]
	}
	if m.Templates {
		return
	}
	r.msgs = append(r.msgs, m.Bytes)
	var tm []byte
	if t := cache.Lookup(binary.BigEndian.Uint32(m.Bytes[12:16]), 256); t != nil {
		tm = t.Record
	}
	r.tmpls = append(r.tmpls, tm)
}

// checkSame asserts got are the stream's messages from first on, byte for
// byte, each data message preceded by the template it was exported with.
func checkSame(t *testing.T, st *stream, first int, got *replayed) {
	t.Helper()
	for i, m := range got.msgs {
		k := first + i
		require.Less(t, k, len(st.msgs))
		if !bytes.Equal(m, st.msgs[k]) {
			t.Fatalf("message %d (stream %d): bytes differ", i, k)
		}
		if st.tmpls[k] != nil && !bytes.Equal(got.tmpls[i], st.tmpls[k]) {
			t.Fatalf("message %d (stream %d): template 256 in force %x, want %x", i, k, got.tmpls[i], st.tmpls[k])
		}
	}
}

func counter(set *metrics.Set, name string) int {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, l := range bytes.Split(b.Bytes(), []byte("\n")) {
		if i := bytes.LastIndexByte(l, ' '); i > 0 && string(l[:i]) == name {
			var v float64
			_, _ = fmt.Sscan(string(l[i+1:]), &v)
			return int(v)
		}
	}
	return -1
}
