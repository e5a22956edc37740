package ipfix_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Golden files: one small RFC 5655 file per template family of the DPI
// reference in testdata/<family>.ipfix, written by dpisim, and next to it
// testdata/<family>.golden, the text dump of what this package decodes from
// it. Regenerate both on purpose and review the diff:
//
//	go test ./ipfix -run TestGolden -update
var goldenUpdate = flag.Bool("update", false, "rewrite testdata/*.ipfix and *.golden")

// goldenExportTime is the export time and clock of every golden file.
var goldenExportTime = time.Date(2025, 11, 22, 12, 0, 0, 0, time.UTC)

// goldenFamily is one golden file: records of stream with IPv4 or IPv6
// addresses, or (stream "") the options template file.
type goldenFamily struct {
	name   string
	stream dpisim.Stream
	ipv6   bool
}

var goldenFamilies = []goldenFamily{
	{"fullflow", dpisim.Fullflow, false},
	{"fullflow-v6", dpisim.Fullflow, true},
	{"clickstream-v4", dpisim.Clickstream, false},
	{"clickstream-v6", dpisim.Clickstream, true},
	{"dnsflow-v4", dpisim.DNSFlow, false},
	{"dnsflow-v6", dpisim.DNSFlow, true},
	{"http_reply", dpisim.HTTPReply, false},
	{"ssl_reply", dpisim.SSLReply, false},
	{"sip", dpisim.SIP, false},
	{"ftp", dpisim.FTP, false},
	{"im", dpisim.IM, false},
	{"mail", dpisim.Mail, false},
	{"raw", dpisim.Raw, false},
	{"options", "", false},
}

// goldenODID is the observation domain of the golden files.
const goldenODID = 43

// goldenFile builds a family's file: a template message, then 10 records in
// three data messages (4, 3, 3 records).
func goldenFile(tb testing.TB, fam goldenFamily) []byte {
	tb.Helper()
	var file []byte
	enc := ipfix.NewEncoder(goldenODID, ipfix.MaxMessageLen)
	enc.SetExportTime(uint32(goldenExportTime.Unix()))
	enc.SetOutput(func(m []byte) { file = append(file, m...) })
	if fam.stream == "" {
		// Options file: exporting process statistics (RFC 7011 §4.3)
		// next to a data template, as an exporter sends them.
		ot := dpisim.ExporterStatsTemplate()
		dt := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 8, Length: 4}, {ID: 2, Length: 8}})
		enc.AddTemplate(dt)
		enc.AddTemplate(ot)
		enc.Flush()
		for i := range 3 {
			rec := dpisim.AppendExporterStats(nil, goldenODID, 7, uint64(100*(i+1)), uint64(2000*(i+1)), uint64(300000*(i+1)), goldenExportTime.Add(-time.Hour).UnixMilli())
			if err := enc.AppendRecord(ot.ID, rec); err != nil {
				tb.Fatal(err)
			}
			if err := enc.AppendRecord(dt.ID, []byte{10, 0, 0, byte(i + 1), 0, 0, 0, 0, 0, 0, 0, byte(i + 3)}); err != nil {
				tb.Fatal(err)
			}
			enc.Flush()
		}
		return file
	}
	share := 0.0
	if fam.ipv6 {
		share = 1
	}
	g, err := dpisim.NewWithConfig(dpisim.Config{Stream: fam.stream, Seed: 2025, IPv6Share: share,
		Subscribers: 1000, Hosts: 500, Now: goldenExportTime})
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range g.Templates() {
		enc.AddTemplate(t)
	}
	enc.Flush()
	var buf []byte
	for i := range 10 {
		id, rec := g.Next(buf[:0])
		buf = rec
		if err := enc.AppendRecord(id, rec); err != nil {
			tb.Fatal(err)
		}
		if i == 3 || i == 6 || i == 9 {
			enc.Flush()
		}
	}
	return file
}

// goldenDump decodes an IPFIX file with this package and prints what it
// understood: headers, templates with element names, every record's values
// by name (Value.String).
func goldenDump(tb testing.TB, name string, file []byte) string {
	tb.Helper()
	var out strings.Builder
	fmt.Fprintf(&out, "# %s: decoded by package ipfix; regenerate with go test ./ipfix -run TestGolden -update\n", name)
	fr := ipfix.NewFileReader(bytes.NewReader(file))
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	var msgs, recs int
	for {
		msg, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		h, err := ipfix.ParseHeader(msg)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		fmt.Fprintf(&out, "message %d offset=%d length=%d export_time=%s sequence=%d domain=%d\n",
			msgs, fr.Offset(), h.Length, time.Unix(int64(h.ExportTime), 0).UTC().Format(time.RFC3339),
			h.SequenceNumber, h.ObservationDomainID)
		msgs++
		// The templates this message defines, from a cache of its own.
		own := ipfix.NewTemplateCache(0)
		if _, err := own.Learn(msg, goldenExportTime); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		it := ipfix.Sets(msg)
		for s, ok := it.Next(); ok; s, ok = it.Next() {
			switch {
			case s.ID == ipfix.TemplateSetID || s.ID == ipfix.OptionsTemplateSetID:
				fmt.Fprintf(&out, "  set %d length=%d (%s)\n", s.ID, len(s.Body)+ipfix.SetHeaderLen,
					map[uint16]string{ipfix.TemplateSetID: "templates", ipfix.OptionsTemplateSetID: "options templates"}[s.ID])
			default:
				n := -1
				if t := dec.Cache().Lookup(h.ObservationDomainID, s.ID); t != nil {
					n, _ = t.RecordCount(s.Body)
				}
				fmt.Fprintf(&out, "  set %d length=%d records=%d\n", s.ID, len(s.Body)+ipfix.SetHeaderLen, n)
			}
		}
		if err := it.Err(); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		for _, t := range own.Templates(h.ObservationDomainID) {
			fmt.Fprintf(&out, "  template %d fields=%d scope=%d options=%v fixed_length=%d variable=%v min_record=%d\n",
				t.ID, len(t.Fields), t.ScopeFieldCount, t.Options, t.FixedLength, t.Variable, t.MinRecordLength())
			for i, f := range t.Fields {
				el := ipfix.LookupElement(f.EnterpriseNumber, f.ID)
				elName, typ := "?", "?"
				if el != nil {
					elName, typ = el.Name, el.Type.String()
				}
				length := fmt.Sprint(f.Length)
				if f.Length == ipfix.VariableLength {
					length = "variable"
				}
				fmt.Fprintf(&out, "    %2d %d/%d %s %s length=%s\n", i, f.EnterpriseNumber, f.ID, elName, typ, length)
			}
		}
		err = dec.Decode(msg, goldenExportTime, func(r *ipfix.Record) error {
			fmt.Fprintf(&out, "  record %d template=%d\n", recs, r.Template.ID)
			recs++
			for _, v := range r.Values {
				elName := fmt.Sprintf("%d/%d", v.Field.EnterpriseNumber, v.Field.ID)
				if v.Element != nil {
					elName = v.Element.Name
				}
				s := v.String()
				if s == "" {
					s = "(empty)" // an empty octet array
				}
				fmt.Fprintf(&out, "    %s = %s\n", elName, s)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
	}
	fmt.Fprintf(&out, "# %d messages, %d records\n", msgs, recs)
	return out.String()
}

func TestGolden(t *testing.T) {
	for _, fam := range goldenFamilies {
		t.Run(fam.name, func(t *testing.T) {
			ipfixPath := filepath.Join("testdata", fam.name+".ipfix")
			goldenPath := filepath.Join("testdata", fam.name+".golden")
			if *goldenUpdate {
				file := goldenFile(t, fam)
				if err := os.WriteFile(ipfixPath, file, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(goldenPath, []byte(goldenDump(t, fam.name, file)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file, err := os.ReadFile(ipfixPath)
			if err != nil {
				t.Fatalf("%v (go test ./ipfix -run TestGolden -update writes it)", err)
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatal(err)
			}
			got := goldenDump(t, fam.name, file)
			if got != string(want) {
				t.Errorf("%s decodes differently (-got, +want):\n%s", ipfixPath, lineDiff(got, string(want)))
			}
		})
	}
}

// TestGoldenFilesShape checks the properties the other tests rely on: each
// file starts with a template-only message, then three data messages.
func TestGoldenFilesShape(t *testing.T) {
	for _, fam := range goldenFamilies {
		file, err := os.ReadFile(filepath.Join("testdata", fam.name+".ipfix"))
		if err != nil {
			t.Fatal(err)
		}
		fr := ipfix.NewFileReader(bytes.NewReader(file))
		var kinds []string
		for {
			msg, err := fr.Next()
			if err != nil {
				break
			}
			k := ""
			it := ipfix.Sets(msg)
			for s, ok := it.Next(); ok; s, ok = it.Next() {
				if s.ID < ipfix.MinDataSetID {
					k += "T"
				} else {
					k += "D"
				}
			}
			kinds = append(kinds, k)
		}
		if len(kinds) != 4 || strings.Contains(kinds[0], "D") || strings.Contains(strings.Join(kinds[1:], ""), "T") {
			t.Errorf("%s: message set kinds %q, want templates first, then 3 data messages", fam.name, kinds)
		}
	}
}

// lineDiff returns a line diff of got and want: "-" lines only in got, "+"
// lines only in want, two lines of context around changes.
func lineDiff(got, want string) string {
	a, b := strings.Split(got, "\n"), strings.Split(want, "\n")
	// Longest common subsequence, then walk it.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			lines = append(lines, line{' ', a[i]})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', a[i]})
			i++
		default:
			lines = append(lines, line{'+', b[j]})
			j++
		}
	}
	var out strings.Builder
	const ctx = 2
	last := -1
	for k, l := range lines {
		near := false
		for d := max(0, k-ctx); d <= min(len(lines)-1, k+ctx); d++ {
			if lines[d].op != ' ' {
				near = true
				break
			}
		}
		if !near {
			continue
		}
		if last >= 0 && k > last+1 {
			out.WriteString("...\n")
		}
		fmt.Fprintf(&out, "%c %s\n", l.op, l.text)
		last = k
	}
	return out.String()
}
