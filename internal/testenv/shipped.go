package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Shipped is a configuration file the project ships (config/default.toml or
// packaging/balancer.toml) rewritten for a test: only its ports, directories and
// the control socket move, so the test runs everything the shipped file turns on
// (metrics, the hand-over, recording). Every other line, comments included, stays
// as shipped.
type Shipped struct {
	Path          string            // the rewritten file
	Metrics       string            // [metrics] listen, host:port
	LoaderMetrics string            // [loader] metrics_listen, host:port ("" when the file has none)
	ControlSocket string            // [balancer] control_socket
	DumpDir       string            // every recording dir and [loader] dir
	SpoolDir      string            // every [receiver.spool] dir
	Receivers     map[string]string // receiver "stream/dpi" (dpi as written or its position) → listen host:port
	Protos        map[string]string // receiver "stream/dpi" → "tcp" or "udp"
}

// ShippedOption changes how ShippedConfig rewrites a file.
type ShippedOption func(*shippedOpts)

type shippedOpts struct {
	clickhouse string
	extra      map[string][]string // section header → lines appended to it
	perStream  map[string][]string // stream + " " + section header → lines appended to it
	modes      map[string]shippedMode
}

// shippedMode is what WithMode sets on the receivers of one stream.
type shippedMode struct {
	mode string
	subs []string
}

// WithMode makes the receivers of stream forward in mode ("All" or
// "RoundRobin") to subs (host:port): their mode line is replaced and a
// subreceivers line added after it. The shipped files record every stream;
// forwarding is the same file with the receiver's mode and subreceivers set,
// as an operator would edit it. The shipped file must name the stream before
// its mode.
func WithMode(stream, mode string, subs ...string) ShippedOption {
	return func(o *shippedOpts) { o.modes[stream] = shippedMode{mode: mode, subs: subs} }
}

// WithClickHouse points [loader] clickhouse at url (a private test server).
func WithClickHouse(url string) ShippedOption {
	return func(o *shippedOpts) { o.clickhouse = url }
}

// WithLines adds lines (key = value) at the end of every section whose header is
// header (e.g. "[receiver.recording]"), for the few settings a test must add, such
// as a record-count rotation. Keys the shipped file sets are not changed this way.
func WithLines(header string, lines ...string) ShippedOption {
	return func(o *shippedOpts) { o.extra[header] = append(o.extra[header], lines...) }
}

// WithReceiverLines adds lines (key = value) at the end of the section header
// ("[[receiver]]", "[receiver.recording]"...) of the receivers of stream only:
// a test that sends to one receiver can point its re-export at its own
// collector, or make it a UDP receiver (proto = "udp", which the shipped files
// do not set; the receiver then gets a free UDP port). Keys the shipped file
// sets are not changed this way.
func WithReceiverLines(stream, header string, lines ...string) ShippedOption {
	return func(o *shippedOpts) {
		k := stream + " " + header
		o.perStream[k] = append(o.perStream[k], lines...)
	}
}

// RepoFile is the path of a file of the repository, from any test's directory.
func RepoFile(t testing.TB, rel string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(self), "..", "..", rel)
}

var (
	shippedHeader = regexp.MustCompile(`^\s*(\[\[?[a-z_.]+\]\]?)`)
	shippedKey    = regexp.MustCompile(`^(\s*)([a-z_]+)(\s*=\s*)("[^"]*"|\S+)(.*)$`)
)

// ShippedConfig writes rel (a path from the repository root, e.g.
// "config/default.toml", or an absolute path such as the config file of an
// extracted package) into a temporary directory with free loopback ports for
// the metrics, every receiver and the loader's metrics, the control socket and
// every dump directory inside that directory. It keeps every other line.
func ShippedConfig(t testing.TB, rel string, opts ...ShippedOption) *Shipped {
	t.Helper()
	o := shippedOpts{extra: map[string][]string{}, perStream: map[string][]string{}, modes: map[string]shippedMode{}}
	for _, opt := range opts {
		opt(&o)
	}
	path := rel
	if !filepath.IsAbs(path) {
		path = RepoFile(t, rel)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dir := t.TempDir()
	s := &Shipped{
		Path:          filepath.Join(dir, filepath.Base(rel)),
		ControlSocket: filepath.Join(dir, "control.sock"),
		DumpDir:       filepath.Join(dir, "dump"),
		SpoolDir:      filepath.Join(dir, "spool"),
		Receivers:     map[string]string{},
		Protos:        map[string]string{},
	}
	var out strings.Builder
	section := ""
	// Receivers are named when their section ends: stream, dpi and proto may come
	// in any order.
	var cur *shippedReceiver
	flushExtra := func() {
		for _, l := range o.extra[section] {
			out.WriteString(l + "\n")
		}
		if cur == nil || (section != "[[receiver]]" && !strings.HasPrefix(section, "[receiver.")) {
			return
		}
		for _, l := range o.perStream[cur.stream+" "+section] {
			if m := shippedKey.FindStringSubmatch(l); section == "[[receiver]]" && m != nil && m[2] == "proto" {
				cur.proto = strings.Trim(m[4], `"`)
			}
			out.WriteString(l + "\n")
		}
	}
	var pending []shippedReceiver
	endReceiver := func() {
		if cur != nil {
			pending = append(pending, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line := sc.Text()
		if m := shippedHeader.FindStringSubmatch(line); m != nil && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			flushExtra()
			section = m[1]
			if section == "[[receiver]]" {
				endReceiver()
				cur = &shippedReceiver{proto: "tcp", listenAt: -1}
			} else if !strings.HasPrefix(section, "[receiver.") {
				endReceiver()
			}
			out.WriteString(line + "\n")
			continue
		}
		m := shippedKey.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line + "\n")
			continue
		}
		indent, key, eq, val, rest := m[1], m[2], m[3], m[4], m[5]
		set := func(v string) { fmt.Fprintf(&out, "%s%s%s%q%s\n", indent, key, eq, v, rest) }
		switch {
		case section == "[metrics]" && key == "listen" && val != `""`:
			s.Metrics = freeAddr(t, "tcp")
			set(s.Metrics)
		case section == "[balancer]" && key == "control_socket" && val != `""`:
			set(s.ControlSocket)
		case section == "[[receiver]]" && key == "listen":
			cur.listenAt = out.Len()
			out.WriteString("\x00LISTEN\x00" + rest + "\n")
		case section == "[[receiver]]" && key == "stream":
			cur.stream = strings.Trim(val, `"`)
			out.WriteString(line + "\n")
		case section == "[[receiver]]" && key == "dpi":
			cur.dpi = val
			out.WriteString(line + "\n")
		case section == "[[receiver]]" && key == "proto":
			cur.proto = strings.Trim(val, `"`)
			out.WriteString(line + "\n")
		case (section == "[receiver.recording]" || section == "[loader]") && key == "dir":
			set(s.DumpDir)
		case section == "[receiver.spool]" && key == "dir" && val != `""`:
			set(s.SpoolDir)
		case section == "[[receiver]]" && key == "mode" && cur.stream != "" && o.modes[cur.stream].mode != "":
			m := o.modes[cur.stream]
			set(m.mode)
			quoted := make([]string, len(m.subs))
			for i, a := range m.subs {
				quoted[i] = fmt.Sprintf("%q", a)
			}
			fmt.Fprintf(&out, "%ssubreceivers = [%s]\n", indent, strings.Join(quoted, ", "))
		case section == "[loader]" && key == "metrics_listen" && val != `""`:
			s.LoaderMetrics = freeAddr(t, "tcp")
			set(s.LoaderMetrics)
		case section == "[loader]" && key == "clickhouse" && o.clickhouse != "":
			set(o.clickhouse)
		default:
			out.WriteString(line + "\n")
		}
	}
	flushExtra()
	endReceiver()
	if err := sc.Err(); err != nil {
		t.Fatalf("testenv: %s: %v", rel, err)
	}
	text := out.String()
	// Fill the listen placeholders, last first so earlier offsets stay valid.
	for i := len(pending) - 1; i >= 0; i-- {
		r := pending[i]
		if r.listenAt < 0 {
			t.Fatalf("testenv: %s: receiver %d has no listen line to move", rel, i)
		}
		if r.dpi == "" {
			r.dpi = fmt.Sprint(perStreamIndex(pending[:i], r.stream))
		}
		addr := freeAddr(t, r.proto)
		name := r.stream + "/" + r.dpi
		s.Receivers[name], s.Protos[name] = addr, r.proto
		end := strings.Index(text[r.listenAt:], "\x00LISTEN\x00")
		at := r.listenAt + end
		text = text[:at] + fmt.Sprintf("listen = %q", addr) + text[at+len("\x00LISTEN\x00"):]
	}
	if err := os.WriteFile(s.Path, []byte(text), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return s
}

// shippedReceiver is a [[receiver]] of a shipped file being rewritten.
type shippedReceiver struct {
	stream, dpi, proto string
	listenAt           int // byte offset of its listen placeholder in the output
}

// perStreamIndex is the default dpi of a receiver: its position among the
// receivers of its stream.
func perStreamIndex(before []shippedReceiver, stream string) int {
	n := 0
	for _, r := range before {
		if r.stream == stream {
			n++
		}
	}
	return n
}

// freeAddr is a free loopback port for proto, as host:port.
func freeAddr(t testing.TB, proto string) string {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
