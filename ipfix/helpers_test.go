package ipfix_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// mkSet returns a set with the given id and body, its length computed.
func mkSet(id uint16, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// mkMessage returns a message of domain odid with the given sets.
func mkMessage(odid, seq uint32, sets ...[]byte) []byte {
	b := make([]byte, ipfix.HeaderLen)
	for _, s := range sets {
		b = append(b, s...)
	}
	ipfix.PutHeader(b, ipfix.Header{Version: ipfix.Version, Length: uint16(len(b)),
		ExportTime: 1700000000, SequenceNumber: seq, ObservationDomainID: odid})
	return b
}

// u16 and friends build wire bytes.
func be16(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, x)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func joinBytes(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// mkTemplateSet returns a template set carrying the records of ts.
func mkTemplateSet(ts ...*ipfix.Template) []byte {
	id := ipfix.TemplateSetID
	var recs [][]byte
	for _, t := range ts {
		if t.Options {
			id = ipfix.OptionsTemplateSetID
		}
		recs = append(recs, t.Record)
	}
	return mkSet(id, recs...)
}

func fieldIANA(id, length uint16) ipfix.FieldSpecifier {
	return ipfix.FieldSpecifier{ID: id, Length: length}
}

func fieldDPI(id, length uint16) ipfix.FieldSpecifier {
	return ipfix.FieldSpecifier{ID: id, Length: length, EnterpriseNumber: ipfix.EnterpriseDPI}
}

const varLenField = ipfix.VariableLength

// fullflowTemplate is a fullflow-like template: 25 IANA fields plus DPI ones, all
// fixed length.
func fullflowTemplate(id uint16) *ipfix.Template {
	return ipfix.NewTemplate(id, []ipfix.FieldSpecifier{
		fieldIANA(1, 8), fieldIANA(2, 8), fieldIANA(8, 4), fieldIANA(12, 4), fieldIANA(7, 2), fieldIANA(11, 2),
		fieldIANA(4, 1), fieldIANA(6, 2), fieldIANA(5, 1), fieldIANA(10, 4), fieldIANA(14, 4), fieldIANA(16, 4),
		fieldIANA(17, 4), fieldIANA(152, 8), fieldIANA(153, 8), fieldIANA(225, 4), fieldIANA(227, 2),
		fieldIANA(226, 4), fieldIANA(228, 2), fieldIANA(58, 2), fieldIANA(59, 2), fieldIANA(56, 6), fieldIANA(57, 6),
		fieldIANA(136, 1), fieldIANA(61, 1),
		fieldDPI(2000, 8), fieldDPI(2015, 2), fieldDPI(2016, 2),
	})
}

// fullflowRecord encodes record i of fullflowTemplate.
func fullflowRecord(dst []byte, i int) []byte {
	n := uint64(i)
	dst = ipfix.AppendUint(dst, 1000+n, 8)
	dst = ipfix.AppendUint(dst, 10+n, 8)
	dst = append(dst, 10, 0, byte(i>>8), byte(i))
	dst = append(dst, 192, 0, 2, byte(i))
	dst = ipfix.AppendUint(dst, 40000+n%1000, 2)
	dst = ipfix.AppendUint(dst, 443, 2)
	dst = append(dst, 6)
	dst = ipfix.AppendUint(dst, 0x18, 2)
	dst = append(dst, 0)
	dst = ipfix.AppendUint(dst, 1, 4)
	dst = ipfix.AppendUint(dst, 2, 4)
	dst = ipfix.AppendUint(dst, 64500, 4)
	dst = ipfix.AppendUint(dst, 15169, 4)
	dst = ipfix.AppendUint(dst, 1700000000000+n, 8)
	dst = ipfix.AppendUint(dst, 1700000001000+n, 8)
	dst = append(dst, 203, 0, 113, byte(i))
	dst = ipfix.AppendUint(dst, 1024+n%60000, 2)
	dst = append(dst, 192, 0, 2, byte(i))
	dst = ipfix.AppendUint(dst, 443, 2)
	dst = ipfix.AppendUint(dst, 100, 2)
	dst = ipfix.AppendUint(dst, 200, 2)
	dst = append(dst, 0x00, 0x11, 0x22, 0x33, 0x44, byte(i))
	dst = append(dst, 0x66, 0x77, 0x88, 0x99, 0xaa, byte(i))
	dst = append(dst, 3, 0)
	dst = ipfix.AppendUint(dst, 1<<40+n, 8)
	dst = ipfix.AppendUint(dst, 7, 2)
	dst = ipfix.AppendUint(dst, 1, 2)
	return dst
}

// clickTemplate is a clickstream-like template with variable-length fields.
func clickTemplate(id uint16) *ipfix.Template {
	return ipfix.NewTemplate(id, []ipfix.FieldSpecifier{
		fieldDPI(1001, 4), fieldDPI(1002, varLenField), fieldDPI(1003, 4), fieldDPI(1004, 4), fieldDPI(1005, varLenField),
		fieldDPI(1006, varLenField), fieldDPI(2000, 8), fieldDPI(1013, 2), fieldDPI(1014, 2), fieldIANA(56, 6),
	})
}

// clickRecord encodes record i of clickTemplate; path has pathLen bytes.
func clickRecord(dst []byte, i, pathLen int) []byte {
	dst = ipfix.AppendUint(dst, uint64(1700000000+i), 4)
	dst = ipfix.AppendVarLen(dst, []byte(fmt.Sprintf("user%d", i)))
	dst = append(dst, 10, 1, 2, byte(i))
	dst = append(dst, 93, 184, 216, 34)
	dst = ipfix.AppendVarLen(dst, []byte("example.com"))
	path := make([]byte, pathLen)
	for j := range path {
		path[j] = 'a' + byte((i+j)%26)
	}
	dst = ipfix.AppendVarLen(dst, path)
	dst = ipfix.AppendUint(dst, uint64(i), 8)
	dst = ipfix.AppendUint(dst, 50000, 2)
	dst = ipfix.AppendUint(dst, 80, 2)
	dst = append(dst, 1, 2, 3, 4, 5, byte(i))
	return dst
}

// optionsTemplate is an exporter-statistics options template.
func optionsTemplate(id uint16) *ipfix.Template {
	return ipfix.NewOptionsTemplate(id, 1, []ipfix.FieldSpecifier{
		fieldIANA(144, 4), fieldIANA(41, 8), fieldIANA(42, 8),
	})
}

// encodeAll encodes records with an Encoder and returns the messages.
func encodeAll(tb testing.TB, odid uint32, maxSize int, ts []*ipfix.Template, recs []taggedRecord) [][]byte {
	tb.Helper()
	var msgs [][]byte
	e := ipfix.NewEncoder(odid, maxSize)
	e.SetExportTime(1700000000)
	e.SetOutput(func(m []byte) { msgs = append(msgs, append([]byte(nil), m...)) })
	for _, t := range ts {
		e.AddTemplate(t)
	}
	for _, r := range recs {
		if err := e.AppendRecord(r.id, r.rec); err != nil {
			tb.Fatalf("AppendRecord: %v", err)
		}
	}
	e.Flush()
	return msgs
}

type taggedRecord struct {
	id  uint16
	rec []byte
}

// decodedRecord is a deep copy of a decoded record.
type decodedRecord struct {
	ODID       uint32
	TemplateID uint16
	Values     [][]byte
}

// decodeAll decodes msgs in order with one decoder and returns copies of all
// records, failing on any error.
func decodeAll(tb testing.TB, cache *ipfix.TemplateCache, msgs ...[]byte) []decodedRecord {
	tb.Helper()
	d := ipfix.NewDecoder(cache)
	var out []decodedRecord
	for _, m := range msgs {
		if err := ipfix.CheckMessage(m); err != nil {
			tb.Fatalf("CheckMessage: %v", err)
		}
		err := d.Decode(m, fixedNow, func(r *ipfix.Record) error {
			out = append(out, copyRecord(r))
			return nil
		})
		if err != nil {
			tb.Fatalf("Decode: %v", err)
		}
	}
	return out
}

func copyRecord(r *ipfix.Record) decodedRecord {
	dr := decodedRecord{ODID: r.ObservationDomainID, TemplateID: r.Template.ID}
	for _, v := range r.Values {
		dr.Values = append(dr.Values, append([]byte{}, v.Raw...))
	}
	return dr
}

// decodeAllLenient is decodeAll ignoring ErrUnknownTemplate.
func decodeAllLenient(tb testing.TB, cache *ipfix.TemplateCache, msgs ...[]byte) []decodedRecord {
	tb.Helper()
	d := ipfix.NewDecoder(cache)
	var out []decodedRecord
	for _, m := range msgs {
		err := d.Decode(m, fixedNow, func(r *ipfix.Record) error {
			out = append(out, copyRecord(r))
			return nil
		})
		if err != nil && !errors.Is(err, ipfix.ErrUnknownTemplate) {
			tb.Fatalf("Decode: %v", err)
		}
	}
	return out
}
