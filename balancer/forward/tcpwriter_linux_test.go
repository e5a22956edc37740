package forward

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// cacheHost is a receiver reduced to what a subreceiver asks of it: the
// templates of one exporter session (a real template cache) and an event loop
// (a mutex: one function at a time).
type cacheHost struct {
	mu         sync.Mutex
	cache      *ipfix.TemplateCache
	exportTime uint32
}

func (h *cacheHost) AppendTemplates(dst []byte, seq *Sequencer, maxSize int, _ map[uint32]uint32) []byte {
	for _, odid := range h.cache.Domains() {
		dst = h.cache.AppendTemplateMessages(dst, odid, h.exportTime, seq.At(odid), maxSize)
	}
	return dst
}

// ReplayBringsTemplates: no receiver spool here.
func (h *cacheHost) ReplayBringsTemplates() bool { return false }

func (h *cacheHost) OnLoop(fn func()) {
	go func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		fn()
	}()
}

// A batch the loop wrote in part on a connection that died before the writer
// took it: the writer must not send it from the middle of a message on its next
// connection, nor number it as if the records already sent on the dead one had
// been sent on the new one. It skips to the next message and counts the torn
// one as dropped (issue 11 item 4).
func TestTCPWriterSkipsTornMessageOnNewConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}, {ID: 8, Length: 4}})
	var msgs [][]byte
	enc := ipfix.NewEncoder(1, 400)
	enc.SetExportTime(1_700_000_000)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, bytes.Clone(m)) })
	enc.AddTemplate(tmpl)
	enc.Flush()
	rec := make([]byte, 0, 20)
	for i := range 100 {
		rec = ipfix.AppendUint(rec[:0], uint64(i), 8)
		rec = ipfix.AppendUint(rec, 1500, 8)
		rec = ipfix.AppendUint(rec, 0x0a000001, 4)
		require.NoError(t, enc.AppendRecord(256, rec))
	}
	enc.Flush()
	require.Greater(t, len(msgs), 4)
	// The exporter's session, whose template the writer sends first.
	h := &cacheHost{cache: ipfix.NewTemplateCache(0), exportTime: 1_700_000_000}
	_, err = h.cache.Learn(msgs[0], time.Now())
	require.NoError(t, err)
	m := NewMetrics(metrics.NewSet(), `stream="fullflow",dpi="0",subreceiver="`+ln.Addr().String()+`"`)
	sub := NewTCPWriter(h, ln.Addr().String(), 8<<20, m, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// The batch: the loop numbered it for connection 7 and wrote half its first
	// message before that connection died.
	data := msgs[1:]
	b := &streamBatch{numberedFor: 7}
	want := 0
	for i, msg := range data {
		b.buf = append(b.buf, msg...)
		n, err := h.cache.RecordCount(msg)
		require.NoError(t, err)
		b.records = append(b.records, int32(n))
		if i > 0 {
			want += n
		}
	}
	b.done = len(data[0]) / 2
	sub.queue = append(sub.queue, b)
	sub.inflight.Store(int64(len(b.buf) - b.done))
	sub.Start()
	defer sub.Stop()

	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	fr := ipfix.NewFileReader(c)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	got, firstSeq := 0, int64(-1)
	for got < want {
		msg, err := fr.Next()
		require.NoError(t, err, "after %d of %d records", got, want)
		n := 0
		require.NoError(t, dec.Decode(msg, time.Now(), func(*ipfix.Record) error { n++; return nil }))
		if n > 0 && firstSeq < 0 {
			firstSeq = int64(binary.BigEndian.Uint32(msg[8:12]))
		}
		got += n
	}
	assert.Equal(t, want, got, "records of the messages after the torn one")
	assert.Zero(t, firstSeq, "the first data message on a new connection is numbered 0 (RFC 7011 §3.1)")
	deadline := time.Now().Add(10 * time.Second)
	for m.SentMessages.Get() != uint64(len(data)-1) {
		require.True(t, time.Now().Before(deadline), "sent %d of %d messages", m.SentMessages.Get(), len(data)-1)
		time.Sleep(5 * time.Millisecond)
	}
	assert.Equal(t, uint64(1), m.Dropped[ReasonConnectionLost].Get(), "the torn message")
}
