package ipfix_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

var parseSentinels = []error{
	ipfix.ErrShortMessage, ipfix.ErrVersion, ipfix.ErrMessageLength, ipfix.ErrSetLength,
	ipfix.ErrTemplate, ipfix.ErrUnknownTemplate, ipfix.ErrFieldLength, ipfix.ErrUnknownWithdrawal,
}

// checkSentinel fails unless err is a *ParseError wrapping one of the parseSentinels.
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	var pe *ipfix.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	for _, s := range parseSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

// testdataMessages returns the messages of the golden files, if any.
func testdataMessages(tb testing.TB) [][]byte {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.ipfix"))
	var msgs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for len(b) > 0 {
			n, err := ipfix.FrameLength(b)
			if err != nil || n == 0 {
				break
			}
			msgs = append(msgs, b[:n])
			b = b[n:]
		}
	}
	return msgs
}

// seedMessages are hand-made messages, each covering an edge.
func seedMessages() [][]byte {
	ft, ct, ot := fullflowTemplate(256), clickTemplate(257), optionsTemplate(258)
	var fb, cb []byte
	for i := range 3 {
		fb = fullflowRecord(fb, i)
		cb = clickRecord(cb, i, []int{0, 254, 300}[i])
	}
	return [][]byte{
		// Header only: the smallest valid message.
		mkMessage(1, 0),
		// Templates, options template and data in one message.
		mkMessage(1, 0, mkTemplateSet(ft, ct), mkTemplateSet(ot), mkSet(256, fb), mkSet(257, cb)),
		// Data of the seeded templates with padding after the records.
		mkMessage(1, 7, mkSet(256, fb, []byte{0, 0, 0}), mkSet(257, cb, []byte{0})),
		// Options data record.
		mkMessage(1, 0, mkSet(258, be32(1), make([]byte, 16))),
		// Variable-length field in the 3-byte form for a short value (legal).
		mkMessage(1, 0, mkSet(257, joinBytes(be32(1), []byte{255, 0, 1, 'x'}, make([]byte, 8), []byte{0, 0}, make([]byte, 18)))),
		// Variable-length overflow: 255 form claiming more than the set.
		mkMessage(1, 0, mkSet(257, joinBytes(be32(1), []byte{255, 9, 9, 'x'}))),
		// Unknown template.
		mkMessage(1, 0, mkSet(999, []byte{1, 2, 3, 4})),
		// Withdrawals: one id, unknown id, withdraw-all, options withdraw-all.
		mkMessage(1, 0, mkSet(2, be16(256, 0), be16(999, 0), be16(2, 0)), mkSet(3, be16(3, 0))),
		// Redefinition in the middle: data before and after.
		mkMessage(1, 0, mkSet(256, fb), mkTemplateSet(clickTemplate(256)), mkSet(256, cb)),
		// Options template with scope count 0 and above the field count.
		mkMessage(1, 0, mkSet(3, joinBytes(be16(300, 1, 0), be16(144, 4)), joinBytes(be16(301, 1, 2), be16(144, 4)))),
		// Truncated template record with an enterprise field.
		mkMessage(1, 0, mkSet(2, joinBytes(be16(300, 2), be16(0x8000|1001, 4), be16(0)))),
		// Template whose records are empty (all lengths 0).
		mkMessage(1, 0, mkSet(2, joinBytes(be16(300, 1), be16(8, 0)))),
		// Set longer than the message.
		mkMessage(1, 0, joinBytes(be16(256, 200), make([]byte, 4))),
		// Set length below 4, and trailing bytes.
		mkMessage(1, 0, be16(256, 3, 0)),
		mkMessage(1, 0, mkSet(300), []byte{0, 0}),
		// Reserved set id.
		mkMessage(1, 0, mkSet(5, []byte{1})),
		// Length field 15 and version 9.
		{0, 10, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		{0, 9, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
	}
}

// FuzzFramer: feeding a stream in chunks yields the same messages, consumed
// byte count and error as feeding it whole.
func FuzzFramer(f *testing.F) {
	for _, m := range append(seedMessages(), testdataMessages(f)...) {
		f.Add(m, uint16(1), uint16(7))
	}
	msgs := seedMessages()
	f.Add(joinBytes(msgs[1], msgs[2], msgs[0]), uint16(15), uint16(16)) // splits around header size
	f.Add(joinBytes(msgs[1], msgs[1][:20]), uint16(3), uint16(1000))    // torn tail
	f.Add(joinBytes(msgs[0], []byte{0, 9}), uint16(1), uint16(1))       // bad version after a message
	f.Add([]byte{0}, uint16(1), uint16(1))                              // one byte
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16) {
		whole, wholeUsed, wholeErr := frameChunks(data, []int{len(data) + 1})
		chunked, used, err := frameChunks(data, []int{int(a%512) + 1, int(b%4096) + 1})
		if wholeUsed > len(data) || used > len(data) {
			t.Fatalf("consumed %d/%d of %d", wholeUsed, used, len(data))
		}
		if wholeUsed != used || len(whole) != len(chunked) {
			t.Fatalf("whole: %d messages %d bytes; chunked: %d messages %d bytes", len(whole), wholeUsed, len(chunked), used)
		}
		for i := range whole {
			if !bytes.Equal(whole[i], chunked[i]) {
				t.Fatalf("message %d differs", i)
			}
			if _, err := ipfix.ParseHeader(whole[i]); err != nil {
				t.Fatalf("framed message has a bad header: %v", err)
			}
		}
		if (wholeErr == nil) != (err == nil) {
			t.Fatalf("whole err %v, chunked err %v", wholeErr, err)
		}
		if err != nil {
			checkSentinel(t, err)
			checkSentinel(t, wholeErr)
			if !errors.Is(err, ipfix.ErrVersion) && !errors.Is(err, ipfix.ErrMessageLength) {
				t.Fatalf("framing error %v is not ErrVersion or ErrMessageLength", err)
			}
		}
	})
}

// frameChunks frames data fed in chunks (sizes cycling) like a TCP reader.
func frameChunks(data []byte, sizes []int) (msgs [][]byte, consumed int, err error) {
	var buf []byte
	pos := 0
	for i := 0; pos < len(data); i++ {
		n := min(sizes[i%len(sizes)], len(data)-pos)
		buf = append(buf, data[pos:pos+n]...)
		pos += n
		for {
			l, ferr := ipfix.FrameLength(buf)
			if ferr != nil {
				return msgs, consumed, ferr
			}
			if l == 0 {
				break
			}
			msgs = append(msgs, buf[:l:l])
			consumed += l
			buf = buf[l:]
		}
	}
	return msgs, consumed, nil
}

// seededCache returns a cache holding the test templates for domain odid.
func seededCache(odid uint32) *ipfix.TemplateCache {
	c := ipfix.NewTemplateCache(0)
	m := mkMessage(odid, 0, mkTemplateSet(fullflowTemplate(256), clickTemplate(257)), mkTemplateSet(optionsTemplate(258)))
	if _, err := c.Learn(m, fixedNow); err != nil {
		panic(err)
	}
	return c
}

type fuzzRecord struct {
	tmpl *ipfix.Template
	rec  decodedRecord
}

// FuzzParseMessage: CheckMessage and Decoder on arbitrary messages never panic,
// errors wrap parseSentinels, and accepted records survive decode → encode → decode.
func FuzzParseMessage(f *testing.F) {
	for _, m := range append(seedMessages(), testdataMessages(f)...) {
		f.Add(m)
	}
	f.Fuzz(fuzzParseMessage)
}

func fuzzParseMessage(t *testing.T, msg []byte) {
	{
		var odid uint32
		if len(msg) >= 16 {
			odid = binary.BigEndian.Uint32(msg[12:16])
		}
		_, _ = ipfix.SplitDatagram(msg, func([]byte) {})
		if err := ipfix.CheckMessage(msg); err != nil {
			checkSentinel(t, err)
			// Nothing downstream may panic on it either.
			c := seededCache(odid)
			_, _ = c.Learn(msg, fixedNow)
			_ = ipfix.NewDecoder(c).Decode(msg, fixedNow, func(*ipfix.Record) error { return nil })
			return
		}
		c := seededCache(odid)
		var recs []fuzzRecord
		err := ipfix.NewDecoder(c).Decode(msg, fixedNow, func(r *ipfix.Record) error {
			for _, v := range r.Values {
				_ = v.String()
				_ = v.Time()
				_ = v.Float()
				_ = v.Addr()
			}
			recs = append(recs, fuzzRecord{r.Template, copyRecord(r)})
			return nil
		})
		if err != nil {
			checkSentinel(t, err)
		}
		if _, err := c.RecordCount(msg); err != nil {
			checkSentinel(t, err)
		}
		for _, size := range []int{100, 1400} {
			err := ipfix.Repack(msg, c, size, func(m []byte) {
				if cerr := ipfix.CheckMessage(m); cerr != nil {
					t.Fatalf("repacked message fails CheckMessage: %v", cerr)
				}
			})
			if err != nil {
				checkSentinel(t, err)
			}
		}
		_ = c.AppendTemplateMessages(nil, odid, 0, 0, 1400)

		// decode → encode → decode.
		var out [][]byte
		e := ipfix.NewEncoder(odid, ipfix.MaxMessageLen)
		e.SetOutput(func(m []byte) { out = append(out, append([]byte(nil), m...)) })
		var added = map[uint16]*ipfix.Template{}
		for _, r := range recs {
			if added[r.tmpl.ID] != r.tmpl {
				e.AddTemplate(r.tmpl)
				added[r.tmpl.ID] = r.tmpl
			}
			var b []byte
			for j, v := range r.rec.Values {
				if r.tmpl.Fields[j].Length == ipfix.VariableLength {
					b = ipfix.AppendVarLen(b, v)
				} else {
					b = append(b, v...)
				}
			}
			if err := e.AppendRecord(r.tmpl.ID, b); err != nil {
				t.Fatalf("re-encode record of template %d: %v", r.tmpl.ID, err)
			}
		}
		e.Flush()
		d := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
		i := 0
		for _, m := range out {
			if err := ipfix.CheckMessage(m); err != nil {
				t.Fatalf("encoded message: %v", err)
			}
			err := d.Decode(m, fixedNow, func(r *ipfix.Record) error {
				if i >= len(recs) {
					t.Fatalf("more records after re-encoding")
				}
				got := copyRecord(r)
				want := recs[i].rec
				if got.TemplateID != want.TemplateID || len(got.Values) != len(want.Values) {
					t.Fatalf("record %d: template %d/%d values %d/%d", i, got.TemplateID, want.TemplateID, len(got.Values), len(want.Values))
				}
				for j := range got.Values {
					if !bytes.Equal(got.Values[j], want.Values[j]) {
						t.Fatalf("record %d value %d: %x != %x", i, j, got.Values[j], want.Values[j])
					}
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatalf("decode re-encoded: %v", err)
			}
		}
		if i != len(recs) {
			t.Fatalf("%d records re-decoded, want %d", i, len(recs))
		}
	}
}

// FuzzReadFile: FileReader over arbitrary bytes returns messages at increasing
// offsets and only *ParseError errors wrapping parseSentinels.
func FuzzReadFile(f *testing.F) {
	seeds := seedMessages()
	var file []byte
	for _, m := range append(seeds, testdataMessages(f)...) {
		f.Add(m)
		if ipfix.CheckMessage(m) == nil {
			file = append(file, m...)
		}
	}
	f.Add(file)                                     // a whole file
	f.Add(file[:len(file)-3])                       // torn tail
	f.Add(joinBytes(seeds[1], seeds[13], seeds[1])) // a bad set in the middle
	f.Add([]byte{})                                 // empty file
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := ipfix.NewFileReader(bytes.NewReader(data))
		last := int64(-1)
		var lastErr error
		for range len(data)/16 + 2 {
			m, err := fr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				checkSentinel(t, err)
				var pe *ipfix.ParseError
				errors.As(err, &pe)
				if int64(pe.Offset) < last || pe.Offset > len(data) {
					t.Fatalf("error offset %d after message at %d (file %d bytes)", pe.Offset, last, len(data))
				}
				if err == lastErr {
					return // sticky: framing lost
				}
				lastErr = err
				continue
			}
			off := fr.Offset()
			if off <= last || off+int64(len(m)) > int64(len(data)) || !bytes.Equal(m, data[off:off+int64(len(m))]) {
				t.Fatalf("message at %d (%d bytes) after %d", off, len(m), last)
			}
			last = off
		}
		t.Fatalf("FileReader did not finish")
	})
}
