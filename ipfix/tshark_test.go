package ipfix_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Wireshark is an independent decoder: it reads RFC 5655 files directly
// (encapsulation "RFC 5655/RFC 5101 IPFIX") and dissects them as CFLOW. These
// tests compare what it decodes with what package ipfix decodes.

// tsharkFields are the fields every tshark run extracts: one run per file
// serves all tests (tshark takes a second or so to start).
var tsharkFields = []string{
	"frame.number", "cflow.version", "cflow.od_id", "cflow.sequence", "cflow.len",
	"cflow.octets", "cflow.packets", "cflow.srcaddr", "cflow.dstaddr", "cflow.srcaddrv6", "cflow.dstaddrv6",
	"cflow.srcport", "cflow.dstport", "cflow.protocol", "cflow.srcas", "cflow.dstas",
	"cflow.vlanid", "cflow.abstimestart", "cflow.abstimeend", "cflow.enterprise_private_entry",
	"cflow.template_id", "cflow.template_ipfix_scope_field_count",
	"cflow.packetsexp", "cflow.flowsexp", "cflow.octetsexp",
}

var tsharkCache = map[string][][][]string{}

// tshark returns, per frame (message) of path, the values of the given fields
// (a subset of tsharkFields).
func tshark(t *testing.T, path string, fields ...string) [][][]string {
	t.Helper()
	all, ok := tsharkCache[path]
	if !ok {
		all = runTshark(t, path, tsharkFields...)
		tsharkCache[path] = all
	}
	idx := make([]int, len(fields))
	for i, f := range fields {
		idx[i] = -1
		for j, g := range tsharkFields {
			if f == g {
				idx[i] = j
			}
		}
		require.GreaterOrEqual(t, idx[i], 0, "field %s not in tsharkFields", f)
	}
	out := make([][][]string, len(all))
	for fr, row := range all {
		out[fr] = make([][]string, len(fields))
		for i, j := range idx {
			out[fr][i] = row[j]
		}
	}
	return out
}

// runTshark runs tshark -T fields on path and returns, per frame (message),
// the values of each field; several occurrences of a field in a frame are
// split. Empty values are dropped: Wireshark skips empty variable-length
// fields.
func runTshark(t *testing.T, path string, fields ...string) [][][]string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark not found: run make test (installs it)")
	}
	args := []string{"-r", path, "-n", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // as root tshark warns; only the exit status counts
	out, err := cmd.Output()
	require.NoError(t, err, "tshark %s\n%s", strings.Join(args, " "), stderr.String())
	var frames [][][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		cells := strings.Split(line, "\t")
		require.Len(t, cells, len(fields), "tshark line %q", line)
		row := make([][]string, len(cells))
		for i, c := range cells {
			for _, v := range strings.Split(c, "|") {
				if v != "" {
					row[i] = append(row[i], v)
				}
			}
		}
		frames = append(frames, row)
	}
	return frames
}

// ourMessage is what package ipfix decodes from one message.
type ourMessage struct {
	seq, odid uint32
	records   [][]ipfix.Value // values copied out of the reused Record
}

func decodeOurs(t *testing.T, path string) []ourMessage {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	fr := ipfix.NewFileReader(bytes.NewReader(data))
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	var msgs []ourMessage
	for {
		msg, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		h, err := ipfix.ParseHeader(msg)
		require.NoError(t, err)
		m := ourMessage{seq: h.SequenceNumber, odid: h.ObservationDomainID}
		msg = bytes.Clone(msg) // Values alias it
		require.NoError(t, dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			m.records = append(m.records, append([]ipfix.Value(nil), r.Values...))
			return nil
		}))
		msgs = append(msgs, m)
	}
	return msgs
}

// ours collects, per message, the String of each value with the given
// element name (in record order), formatted by f.
func ours(msgs []ourMessage, name string, f func(ipfix.Value) string) [][]string {
	out := make([][]string, len(msgs))
	for i, m := range msgs {
		for _, r := range m.records {
			for _, v := range r {
				if v.Element != nil && v.Element.Name == name {
					out[i] = append(out[i], f(v))
				}
			}
		}
	}
	return out
}

func column(frames [][][]string, i int) [][]string {
	out := make([][]string, len(frames))
	for f, row := range frames {
		out[f] = row[i]
	}
	return out
}

func uintString(v ipfix.Value) string { return strconv.FormatUint(v.Uint(), 10) }
func addrString(v ipfix.Value) string { return v.Addr().String() }

// tsharkTime parses Wireshark's absolute time ("Nov 22, 2025 11:59:51.587000000 UTC").
func tsharkTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse("Jan _2, 2006 15:04:05.999999999 MST", s)
	require.NoError(t, err, "tshark time %q", s)
	return tm
}

// TestTsharkMessages: Wireshark sees the same messages, domains and
// sequence numbers in every golden file.
func TestTsharkMessages(t *testing.T) {
	for _, fam := range goldenFamilies {
		t.Run(fam.name, func(t *testing.T) {
			path := filepath.Join("testdata", fam.name+".ipfix")
			msgs := decodeOurs(t, path)
			frames := tshark(t, path, "frame.number", "cflow.version", "cflow.od_id", "cflow.sequence", "cflow.len")
			require.Len(t, frames, len(msgs), "messages")
			for i, m := range msgs {
				assert.Equal(t, []string{"10"}, frames[i][1], "message %d version", i)
				// The options records' observationDomainId scope is od_id too.
				if assert.NotEmpty(t, frames[i][2]) {
					assert.Equal(t, fmt.Sprint(m.odid), frames[i][2][0], "message %d domain", i)
				}
				assert.Equal(t, []string{fmt.Sprint(m.seq)}, frames[i][3], "message %d sequence", i)
			}
		})
	}
}

// TestTsharkFullflow compares the IANA flow fields Wireshark decodes with ours.
func TestTsharkFullflow(t *testing.T) {
	for _, tc := range []struct{ file, src, dst, tsrc, tdst string }{
		{"fullflow", "sourceIPv4Address", "destinationIPv4Address", "cflow.srcaddr", "cflow.dstaddr"},
		{"fullflow-v6", "sourceIPv6Address", "destinationIPv6Address", "cflow.srcaddrv6", "cflow.dstaddrv6"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file+".ipfix")
			msgs := decodeOurs(t, path)
			frames := tshark(t, path, "cflow.octets", "cflow.packets", tc.tsrc, tc.tdst,
				"cflow.srcport", "cflow.dstport", "cflow.protocol", "cflow.srcas", "cflow.dstas",
				"cflow.vlanid", "cflow.abstimestart", "cflow.abstimeend")
			require.Len(t, frames, len(msgs))
			records := 0
			for _, m := range msgs {
				records += len(m.records)
			}
			require.Equal(t, 10, records)
			for i, c := range []struct {
				name string
				f    func(ipfix.Value) string
			}{
				{"octetDeltaCount", uintString},
				{"packetDeltaCount", uintString},
				{tc.src, addrString},
				{tc.dst, addrString},
				{"sourceTransportPort", uintString},
				{"destinationTransportPort", uintString},
				{"protocolIdentifier", uintString},
				{"bgpSourceAsNumber", uintString},
				{"bgpDestinationAsNumber", uintString},
				{"vlanId", uintString},
			} {
				assert.Equal(t, ours(msgs, c.name, c.f), column(frames, i), c.name)
			}
			for k, name := range []string{"flowStartMilliseconds", "flowEndMilliseconds"} {
				want := ours(msgs, name, func(v ipfix.Value) string { return v.Time().Format(time.RFC3339Nano) })
				got := column(frames, 10+k)
				for f := range got {
					for j, s := range got[f] {
						got[f][j] = tsharkTime(t, s).Format(time.RFC3339Nano)
					}
				}
				assert.Equal(t, want, got, name)
			}
		})
	}
}

// TestTsharkEnterprise compares the 43823 fields: Wireshark knows the PEN
// ("VAS Experts") but not the elements, so it shows their bytes; they must be
// ours, field by field (empty variable-length fields are not shown).
func TestTsharkEnterprise(t *testing.T) {
	mixed := filepath.Join(t.TempDir(), "clickstream-mixed.ipfix")
	writeMixedClickstream(t, mixed)
	paths := []string{mixed}
	for _, fam := range goldenFamilies {
		if fam.stream != "" {
			paths = append(paths, filepath.Join("testdata", fam.name+".ipfix"))
		}
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			msgs := decodeOurs(t, path)
			frames := tshark(t, path, "cflow.enterprise_private_entry")
			require.Len(t, frames, len(msgs))
			want := make([][]string, len(msgs))
			for i, m := range msgs {
				for _, r := range m.records {
					for _, v := range r {
						if v.Field.EnterpriseNumber == ipfix.EnterpriseDPI && len(v.Raw) > 0 {
							want[i] = append(want[i], hex.EncodeToString(v.Raw))
						}
					}
				}
			}
			got := column(frames, 0)
			for f := range got {
				for j := range got[f] {
					got[f][j] = strings.ReplaceAll(got[f][j], ":", "")
				}
			}
			assert.Equal(t, want, got)
			// Spot check: Wireshark's bytes of the first login are ours.
			pos := 0
			for _, v := range msgs[1].records[0] {
				if v.Element != nil && v.Element.Name == "login" {
					require.Greater(t, len(got[1]), pos)
					b, err := hex.DecodeString(got[1][pos])
					require.NoError(t, err)
					assert.Equal(t, string(v.Raw), string(b), "first login")
					break
				}
				if v.Field.EnterpriseNumber == ipfix.EnterpriseDPI && len(v.Raw) > 0 {
					pos++
				}
			}
		})
	}
}

// writeMixedClickstream writes a bigger clickstream file as ipfix-gen sends
// it: IPv4 and IPv6 records interleaved in 1400-byte messages.
func writeMixedClickstream(t *testing.T, path string) {
	t.Helper()
	g, err := dpisim.NewWithConfig(dpisim.Config{Stream: dpisim.Clickstream, Seed: 3, IPv6Share: 0.5,
		Subscribers: 1000, Hosts: 500, Now: goldenExportTime})
	require.NoError(t, err)
	var file []byte
	enc := ipfix.NewEncoder(1, 1400)
	enc.SetExportTime(uint32(goldenExportTime.Unix()))
	enc.SetOutput(func(m []byte) { file = append(file, m...) })
	for _, tm := range g.Templates() {
		enc.AddTemplate(tm)
	}
	enc.Flush()
	var buf []byte
	for range 300 {
		id, rec := g.Next(buf[:0])
		buf = rec
		require.NoError(t, enc.AppendRecord(id, rec))
	}
	enc.Flush()
	require.NoError(t, os.WriteFile(path, file, 0o644))
}

// TestTsharkOptions: the options template file (RFC 7011 §4.3 statistics).
func TestTsharkOptions(t *testing.T) {
	path := filepath.Join("testdata", "options.ipfix")
	msgs := decodeOurs(t, path)
	frames := tshark(t, path, "cflow.template_id", "cflow.template_ipfix_scope_field_count",
		"cflow.packetsexp", "cflow.flowsexp", "cflow.octetsexp", "cflow.packets", "cflow.srcaddr")
	require.Len(t, frames, len(msgs))
	assert.Equal(t, []string{"256", "290"}, frames[0][0])
	assert.Equal(t, []string{"1"}, frames[0][1])
	for i, name := range []string{"exportedMessageTotalCount", "exportedFlowRecordTotalCount", "exportedOctetTotalCount", "packetDeltaCount"} {
		assert.Equal(t, ours(msgs, name, uintString), column(frames, 2+i), name)
	}
	assert.Equal(t, ours(msgs, "sourceIPv4Address", addrString), column(frames, 6))
}
