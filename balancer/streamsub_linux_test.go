package balancer

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// A batch the loop wrote in part on a connection that died before the writer
// took it: the writer must not send it from the middle of a message on its next
// connection, nor number it as if the records already sent on the dead one had
// been sent on the new one. It skips to the next message and counts the torn
// one as dropped (issue 11 item 4).
func TestStreamSubSkipsTornMessageOnNewConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cfg := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.UDP,
		Mode: config.All, QueueBytes: 8 << 20, MTU: 1500,
		Subreceivers: []config.Subreceiver{{Addr: ln.Addr().String(), Proto: config.TCP}}}
	r, err := New(cfg, Options{ShutdownTimeout: time.Second})
	require.NoError(t, err)

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
	s := newSession(netip.MustParseAddrPort("127.0.0.1:4739"), 0)
	_, err = s.templates.Learn(msgs[0], time.Now())
	require.NoError(t, err)
	s.clock.Observe(msgs[0])
	r.sessions[s] = nil

	// The batch: the loop numbered it for connection 7 and wrote half its first
	// message before that connection died.
	data := msgs[1:]
	b := &streamBatch{numberedFor: 7}
	want := 0
	for i, m := range data {
		b.buf = append(b.buf, m...)
		n, err := s.templates.RecordCount(m)
		require.NoError(t, err)
		b.records = append(b.records, int32(n))
		if i > 0 {
			want += n
		}
	}
	b.done = len(data[0]) / 2
	sub := r.outputs[0].(*streamSub)
	sub.queue = append(sub.queue, b)
	sub.inflight.Store(int64(len(b.buf) - b.done))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("receiver did not stop")
		}
	}()

	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	fr := ipfix.NewFileReader(c)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	got, firstSeq := 0, int64(-1)
	for got < want {
		m, err := fr.Next()
		require.NoError(t, err, "after %d of %d records", got, want)
		n := 0
		require.NoError(t, dec.Decode(m, time.Now(), func(*ipfix.Record) error { n++; return nil }))
		if n > 0 && firstSeq < 0 {
			firstSeq = int64(binary.BigEndian.Uint32(m[8:12]))
		}
		got += n
	}
	assert.Equal(t, want, got, "records of the messages after the torn one")
	assert.Zero(t, firstSeq, "the first data message on a new connection is numbered 0 (RFC 7011 §3.1)")
	labels := `stream="fullflow",dpi="0",subreceiver="` + ln.Addr().String() + `"`
	waitForLoop(t, func() bool {
		return setValue(t, r, `ipfix_balancer_sent_messages_total{`+labels+`}`) == float64(len(data)-1)
	})
	assert.Equal(t, 1.0, setValue(t, r, `ipfix_balancer_dropped_messages_total{`+labels+`,reason="connection_lost"}`), "the torn message")
}

// waitForLoop polls cond for at most 10 s.
func waitForLoop(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out")
		time.Sleep(5 * time.Millisecond)
	}
}
