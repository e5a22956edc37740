package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// LegacyDumpDir is the recording dir of receivers imported from a legacy .env
// (the legacy collector recorded to /var/qoestor/backend/dump).
const LegacyDumpDir = "/var/lib/ipfix-balancer/dump"

// LegacySpoolDir is the spool dir of RoundRobin and All receivers imported
// from a legacy .env: it has no equivalent setting, so they get the packaged
// default (packaging/balancer.toml).
const LegacySpoolDir = "/var/lib/ipfix-balancer/spool"

// envParams are the legacy receiver parameters, IPFIX_<STREAM>_<PARAM>[N].
var envParams = map[string]bool{
	"PORT_TYPE":             true,
	"PORT":                  true,
	"ROTATE_MINUTES":        true,
	"ROTATE_DELAY_SECONDS":  true,
	"FW_MAX_QUEUE_SIZE":     true,
	"DUMP_INSERT_PROCESSES": true,
	"EXPORT":                true,
	"DPI_ID":                true,
	"BALANCER":              true,
	"BALANCER_SUB":          true,
	"BALANCER_SUB_PROTO":    true,
	"TASKSET":               true,
	"BALANCER_TASKSET":      true,
	"BALANCER_AUTO":         true,
}

// LegacyDatabase is the legacy collector's database: a .env with collector
// settings (the QoE Stor's /var/qoestor/backend/.env) loads into it, so the
// manual's queries (qoestor.fullflow, ...) and DPIUI2 find the tables.
const LegacyDatabase = "qoestor"

// LegacyDictionaryDir is where the legacy collector kept its dictionaries;
// a .env that turns on a mode reading them loads them from there.
const LegacyDictionaryDir = "/var/qoestor/backend/etc/db"

// loaderSettings are the legacy collector's settings the loader applies
// ([loader] keys of the same names in lower case), with their ranges.
var loaderSettings = map[string]int64{
	"TRAFFIC_DIR_DEF_MODE":               4,
	"SUBSCRIBER_FILTER_MODE":             4,
	"SUBSCRIBER_EXCLUDE_MODE":            4,
	"ULR_REPLACE_LOGIN_WITH_VCHANNEL":    2,
	"ULR_USE_DIC_WHEN_REPLACING_LOGIN":   1,
	"NAT_IMPORT_FROM_FULLFLOW":           1,
	"NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK": NATAggFieldsAll, // also written in hex, 0x...
	"NAT_AGG_LOG_GROUP_TIME_INTERVAL":    60,              // minutes: 1, 5, 10, 15, 30, 60
}

// collectorSettings are settings of the legacy collector (QoE Stor) that may
// share the .env file; the balancer ignores them with a warning.
var collectorSettings = map[string]bool{
	"TRAFFIC_DIR_DEF_MODE":                 true,
	"SUBSCRIBER_FILTER_MODE":               true,
	"SUBSCRIBER_EXCLUDE_MODE":              true,
	"URLS_CATEGORIES_DIC_AUTOLOAD_ENABLED": true,
	"ASNUM_DIC_AUTOLOAD_ENABLED":           true,
}

var (
	envNameRE   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	envStreamRE = regexp.MustCompile(`^[A-Z0-9]+$`)
)

func isCollectorSetting(name string) bool {
	if !envNameRE.MatchString(name) {
		return false
	}
	return collectorSettings[name] || strings.HasPrefix(name, "ULR_") ||
		strings.HasPrefix(name, "NAT_AGG_") || strings.HasPrefix(name, "NAT_IMPORT_")
}

// envValue is one setting of a legacy receiver.
type envValue struct {
	key   string // as written: IPFIX_FULLFLOW_PORT[0]
	value string
	line  int
}

type envReceiver struct {
	stream string // lower case
	index  int
	line   int // first line that mentions the receiver
	params map[string]envValue
}

// envMessage is a warning or an error at a line of the file.
type envMessage struct {
	line int
	msg  string
}

type envParser struct {
	name      string
	errs      []envMessage
	warnings  []envMessage
	receivers map[string]*envReceiver
	order     []*envReceiver
	streams   []string         // upper-case streams in order of first appearance
	loader    map[string]int64 // loaderSettings found
	collector bool             // a setting of the legacy collector seen
}

func (p *envParser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, envMessage{line, fmt.Sprintf(format, args...)})
}

func (p *envParser) warnf(line int, format string, args ...any) {
	p.warnings = append(p.warnings, envMessage{line, fmt.Sprintf(format, args...)})
}

func (p *envParser) format(ms []envMessage) []string {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].line < ms[j].line })
	out := make([]string, len(ms))
	for i, m := range ms {
		if m.line > 0 {
			out[i] = p.name + ":" + strconv.Itoa(m.line) + ": " + m.msg
		} else {
			out[i] = p.name + ": " + m.msg
		}
	}
	return out
}

// ParseEnv parses the legacy balancer's and collector's .env configuration
// (/var/fast_ipfix_balancer/backend/.env, /var/qoestor/backend/.env):
//
//	# comment
//	IPFIX_FULLFLOW_PORT_TYPE[0]=tcp
//	export IPFIX_FULLFLOW_BALANCER_SUB[0]="10.19.3.21/1500,10.19.3.23/1600"  # comment
//
// Each IPFIX_<STREAM>_<PARAM>[N] line (no [N] means [0]) sets a parameter of
// receiver N of the stream (any [A-Z0-9]+ word, lower-cased). The parameters:
// PORT_TYPE, PORT (the receiver listens on 0.0.0.0:PORT), ROTATE_MINUTES,
// ROTATE_DELAY_SECONDS (overrides the minutes when not 0),
// FW_MAX_QUEUE_SIZE (rotate_records), EXPORT and DUMP_INSERT_PROCESSES
// (re-export ip/port/proto lists; a bare number in the latter is the
// collector's count of insert processes and is ignored), DPI_ID (-1: N),
// BALANCER (RoundRobin, All; Disabled or absent means Recording into
// [LegacyDumpDir]), BALANCER_SUB and BALANCER_SUB_PROTO, TASKSET and
// BALANCER_TASKSET (cpu; the latter wins), BALANCER_AUTO (Enabled: balancer_auto,
// recording into [LegacyDumpDir]). The rest
// of the Config is [Default]'s, with the loader reading LegacyDumpDir.
//
// The legacy collector's TRAFFIC_DIR_DEF_MODE, SUBSCRIBER_FILTER_MODE,
// SUBSCRIBER_EXCLUDE_MODE, ULR_REPLACE_LOGIN_WITH_VCHANNEL and
// ULR_USE_DIC_WHEN_REPLACING_LOGIN set the [loader] keys of the same names
// (dictionaries from [LegacyDictionaryDir] when a mode needs them), and so
// do its NAT_* settings; a .env with any collector setting loads into
// [LegacyDatabase]. Its other
// settings (ULR_*, NAT_AGG_*, ...) and settings that do not apply (subreceivers of a
// recording receiver) give warnings. Unknown or malformed lines are errors.
// Warnings and errors read "name:line: ..."; all errors are joined.
func ParseEnv(data []byte, name string) (*Config, []string, error) {
	cfg, _, warnings, err := parseEnv(data, name)
	return cfg, warnings, err
}

// parseEnv is ParseEnv; it also returns the file the .env converts to.
func parseEnv(data []byte, name string) (*Config, *fileConfig, []string, error) {
	p := &envParser{name: name, receivers: map[string]*envReceiver{}}
	p.parse(data)
	base, err := decodeDefault()
	if err != nil {
		panic("BUG: default.toml: " + err.Error())
	}
	f := *base
	f.Receiver = p.convert()
	f.Loader.Dir = LegacyDumpDir
	if p.collector {
		f.Loader.Database = LegacyDatabase
	}
	if l := p.loader; len(l) > 0 {
		f.Loader.TrafficDirDefMode = l["TRAFFIC_DIR_DEF_MODE"]
		f.Loader.SubscriberFilterMode = l["SUBSCRIBER_FILTER_MODE"]
		f.Loader.SubscriberExcludeMode = l["SUBSCRIBER_EXCLUDE_MODE"]
		f.Loader.ReplaceLoginWithVChannel = l["ULR_REPLACE_LOGIN_WITH_VCHANNEL"]
		f.Loader.UseDicWhenReplacingLogin = l["ULR_USE_DIC_WHEN_REPLACING_LOGIN"] == 1
		f.Loader.NATImportFromFullflow = l["NAT_IMPORT_FROM_FULLFLOW"] == 1
		f.Loader.NATAggLogFieldsToSaveBitmask = l["NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK"]
		if v, ok := l["NAT_AGG_LOG_GROUP_TIME_INTERVAL"]; ok {
			f.Loader.NATAggLogGroupTimeInterval = v
		}
		if l["TRAFFIC_DIR_DEF_MODE"]|l["SUBSCRIBER_FILTER_MODE"]|l["SUBSCRIBER_EXCLUDE_MODE"]|l["ULR_USE_DIC_WHEN_REPLACING_LOGIN"] != 0 {
			f.Loader.Dictionaries = LegacyDictionaryDir
		}
	}
	if len(p.errs) == 0 && len(f.Receiver) == 0 {
		p.errorf(0, "no receivers: no IPFIX_<STREAM>_<PARAM>[N] settings")
	}
	warnings := p.format(p.warnings)
	if len(p.errs) > 0 {
		var errs []error
		for _, s := range p.format(p.errs) {
			errs = append(errs, errors.New(s))
		}
		return nil, nil, warnings, errors.Join(errs...)
	}
	cfg, errs := build(&f)
	if errs != nil {
		for i, err := range errs {
			errs[i] = fmt.Errorf("%s: %w", name, err)
		}
		return nil, nil, warnings, errors.Join(errs...)
	}
	return cfg, &f, warnings, nil
}

// ConvertEnv converts a legacy .env (see [ParseEnv]) to TOML, headed by a
// comment naming name and listing the warnings. It holds what the .env
// said and what differs from the defaults ([loader] dir), nothing else:
// every other setting keeps its default, which -print-config shows. Parse
// of the result gives the Config that ParseEnv gives.
func ConvertEnv(data []byte, name string) ([]byte, []string, error) {
	cfg, f, warnings, err := parseEnv(data, name)
	if err != nil {
		return nil, warnings, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, warnings, err
	}
	base, err := decodeDefault()
	if err != nil {
		panic("BUG: default.toml: " + err.Error())
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Converted from %s (legacy IPFIX_<STREAM>_<PARAM>[N] settings).\n", name)
	b.WriteString("# Only what the .env set, and what differs from the defaults; every other\n")
	b.WriteString("# setting has its default (ipfix-balancer -config FILE -print-config shows all).\n")
	if len(warnings) > 0 {
		b.WriteString("# Warnings:\n")
		for _, w := range warnings {
			b.WriteString("#   " + strings.ReplaceAll(w, "\n", " ") + "\n")
		}
	}
	writeTable(&b, "[metrics]", &f.Metrics, &base.Metrics)
	writeTable(&b, "[log]", &f.Log, &base.Log)
	writeTable(&b, "[balancer]", &f.Balancer, &base.Balancer)
	for i := range f.Receiver {
		writeTable(&b, "[[receiver]]", &f.Receiver[i], nil)
	}
	writeTable(&b, "[loader]", &f.Loader, &base.Loader)
	return b.Bytes(), warnings, nil
}

// writeTable writes header and the keys of the struct *v that differ from
// *def (that are set, when def is nil); a struct field is a sub-table,
// written when it has such a key. Nothing is written for an unchanged table.
func writeTable(b *bytes.Buffer, header string, v, def any) {
	rv := reflect.ValueOf(v).Elem()
	var rd reflect.Value
	if def != nil {
		rd = reflect.ValueOf(def).Elem()
	}
	var body bytes.Buffer
	var subs []func()
	for i := range rv.NumField() {
		field := rv.Type().Field(i)
		key, _, _ := strings.Cut(field.Tag.Get("toml"), ",")
		fv := rv.Field(i)
		if fv.Kind() == reflect.Struct {
			var fd any
			if rd.IsValid() {
				fd = rd.Field(i).Addr().Interface()
			}
			sub := strings.Trim(header, "[]")
			subs = append(subs, func() { writeTable(b, "["+sub+"."+key+"]", fv.Addr().Interface(), fd) })
			continue
		}
		if rd.IsValid() && reflect.DeepEqual(fv.Interface(), rd.Field(i).Interface()) || !rd.IsValid() && fv.IsZero() {
			continue
		}
		val := fv.Interface()
		if fv.Kind() == reflect.Pointer {
			val = fv.Elem().Interface()
		}
		line, err := toml.Marshal(map[string]any{key: val})
		if err != nil {
			panic("BUG: encode " + key + ": " + err.Error())
		}
		body.Write(line)
	}
	if body.Len() > 0 || strings.HasPrefix(header, "[[") {
		if !strings.Contains(strings.Trim(header, "[]"), ".") {
			b.WriteString("\n")
		}
		b.WriteString(header + "\n")
		b.Write(body.Bytes())
	}
	for _, f := range subs {
		f()
	}
}

func (p *envParser) parse(data []byte) {
	for n, raw := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimSpace(rest)
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			p.collector = p.collector || isCollectorSetting(line) || loaderSettings[line] > 0
			if _, ok := loaderSettings[line]; ok {
				// The manual prints NAT_IMPORT_FROM_FULLFLOW and
				// NAT_AGG_LOG_GROUP_TIME_INTERVAL so, values listed below.
				p.warnf(lineNo, "%s: no value (no '='): the default stays", line)
			} else if isCollectorSetting(line) {
				p.warnf(lineNo, "%s: ignored: collector setting", line)
			} else {
				p.errorf(lineNo, "%q: want NAME=value", line)
			}
			continue
		}
		key := strings.TrimSpace(line[:eq])
		p.collector = p.collector || isCollectorSetting(key) || loaderSettings[key] > 0
		value, err := envUnquote(line[eq+1:])
		if err != nil {
			p.errorf(lineNo, "%s: %v", key, err)
			continue
		}
		if maxV, ok := loaderSettings[key]; ok {
			base := 10
			if key == "NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK" {
				base = 0 // 0x7ff, as the manual writes the bits
			}
			n, err := strconv.ParseInt(value, base, 64)
			if err != nil || n < 0 || n > maxV {
				if base == 0 {
					p.errorf(lineNo, "%s: %q: want 0..%#x", key, value, maxV)
				} else {
					p.errorf(lineNo, "%s: %q: want 0..%d", key, value, maxV)
				}
				continue
			}
			if key == "NAT_AGG_LOG_GROUP_TIME_INTERVAL" && !slices.Contains([]int64{1, 5, 10, 15, 30, 60}, n) {
				p.errorf(lineNo, "%s: %q: want 1, 5, 10, 15, 30 or 60 (minutes)", key, value)
				continue
			}
			if p.loader == nil {
				p.loader = map[string]int64{}
			}
			p.loader[key] = n
			continue
		}
		rest, ok := strings.CutPrefix(key, "IPFIX_")
		if !ok {
			if isCollectorSetting(key) {
				p.warnf(lineNo, "%s: ignored: collector setting", key)
			} else {
				p.errorf(lineNo, "%s: unknown setting", key)
			}
			continue
		}
		index := 0
		if i := strings.IndexByte(rest, '['); i >= 0 {
			inner, ok := strings.CutSuffix(rest[i+1:], "]")
			n, isNum := parsePort(inner) // 0..65535, digits only
			if !ok || !isNum || int(n) > maxDPI {
				p.errorf(lineNo, "%s: bad index %q: want [0], [1]...", key, rest[i:])
				continue
			}
			index, rest = int(n), rest[:i]
		}
		stream, param, _ := strings.Cut(rest, "_")
		if !envStreamRE.MatchString(stream) || param == "" {
			p.errorf(lineNo, "%s: want IPFIX_<STREAM>_<PARAM>[N]", key)
			continue
		}
		if !envParams[param] {
			p.errorf(lineNo, "%s: unknown parameter %s", key, param)
			continue
		}
		if value == "" {
			continue // unset, as in the shell
		}
		id := stream + "[" + strconv.Itoa(index) + "]"
		r := p.receivers[id]
		if r == nil {
			r = &envReceiver{stream: stream, index: index, line: lineNo, params: map[string]envValue{}}
			p.receivers[id] = r
			p.order = append(p.order, r)
			if !contains(p.streams, stream) {
				p.streams = append(p.streams, stream)
			}
		}
		if prev, ok := r.params[param]; ok {
			p.warnf(lineNo, "%s: set again (first at line %d); the last value wins", key, prev.line)
		}
		r.params[param] = envValue{key: key, value: value, line: lineNo}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// envUnquote returns the value of a NAME=value line: bare (up to a comment,
// a '#' after a blank), or in single or double quotes (then only a comment
// may follow).
func envUnquote(s string) (string, error) {
	s = strings.TrimLeft(s, " \t")
	if s == "" {
		return "", nil
	}
	q := s[0]
	if q != '"' && q != '\'' {
		for i := 0; i < len(s); i++ {
			if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
				s = s[:i]
				break
			}
		}
		return strings.TrimSpace(s), nil
	}
	var b strings.Builder
	i := 1
	for ; i < len(s) && s[i] != q; i++ {
		if q == '"' && s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	if i >= len(s) {
		return "", fmt.Errorf("no closing %c", q)
	}
	if rest := strings.TrimSpace(s[i+1:]); rest != "" && rest[0] != '#' {
		return "", fmt.Errorf("text after the closing %c: %q", q, rest)
	}
	return b.String(), nil
}

// convert turns the receivers into [[receiver]] tables, streams in order of
// first appearance, each stream's receivers by index.
func (p *envParser) convert() []fileReceiver {
	rs := append([]*envReceiver(nil), p.order...)
	sort.SliceStable(rs, func(i, j int) bool {
		si, sj := indexOf(p.streams, rs[i].stream), indexOf(p.streams, rs[j].stream)
		if si != sj {
			return si < sj
		}
		return rs[i].index < rs[j].index
	})
	var out []fileReceiver
	for _, r := range rs {
		out = append(out, p.convertReceiver(r))
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func (p *envParser) convertReceiver(r *envReceiver) fileReceiver {
	fr := fileReceiver{Stream: strings.ToLower(r.stream)}
	get := func(param string) (envValue, bool) {
		v, ok := r.params[param]
		return v, ok
	}
	all := fmt.Sprintf("IPFIX_%s_*[%d]", r.stream, r.index)

	if v, ok := get("PORT"); ok {
		if n, ok := parsePort(v.value); ok && n > 0 {
			fr.Listen = "0.0.0.0:" + strconv.Itoa(int(n))
		} else {
			p.errorf(v.line, "%s: %q: bad port", v.key, v.value)
		}
	} else if defaultPorts[fr.Stream] == 0 {
		p.errorf(r.line, "%s: no PORT, and stream %s has no default port", all, fr.Stream)
	}
	proto := func(param string) string {
		v, ok := get(param)
		if !ok {
			return ""
		}
		var pr Proto
		if err := pr.UnmarshalText([]byte(v.value)); err != nil {
			p.errorf(v.line, "%s: %v", v.key, err)
			return ""
		}
		return pr.String()
	}
	fr.Proto = proto("PORT_TYPE")
	fr.SubreceiverProto = proto("BALANCER_SUB_PROTO")

	mode := Recording
	modeValue, hasMode := get("BALANCER")
	if hasMode {
		if err := mode.UnmarshalText([]byte(modeValue.value)); err != nil {
			// The legacy words: Disabled is what the legacy GUI offers for
			// recording.
			p.errorf(modeValue.line, "%s: %q: bad mode (want RoundRobin, All or Disabled)", modeValue.key, modeValue.value)
		}
	}
	fr.Mode = mode.String()

	subProto := TCP
	_ = subProto.UnmarshalText([]byte(fr.SubreceiverProto))
	list := func(v envValue, proto Proto) []string {
		var out []string
		for item := range strings.SplitSeq(v.value, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			sub, err := parseSubreceiver(item, proto)
			if err != nil {
				p.errorf(v.line, "%s: %v", v.key, err)
				continue
			}
			out = append(out, formatSubreceivers([]Subreceiver{sub}, proto)...)
		}
		return out
	}
	if v, ok := get("BALANCER_SUB"); ok {
		subs := list(v, subProto)
		if mode == Recording {
			p.warnf(v.line, "%s: ignored: mode is Recording (BALANCER not set, or Disabled)", v.key)
		} else {
			fr.Subreceivers = subs
		}
	}
	if mode != Recording && len(fr.Subreceivers) == 0 {
		if _, ok := get("BALANCER_SUB"); !ok {
			p.errorf(modeValue.line, "%s: mode %s needs IPFIX_%s_BALANCER_SUB[%d]", modeValue.key, mode, r.stream, r.index)
		}
	}

	var export []string
	for _, param := range []string{"DUMP_INSERT_PROCESSES", "EXPORT"} {
		v, ok := get(param)
		if !ok {
			continue
		}
		if _, err := strconv.ParseUint(v.value, 10, 32); err == nil && param == "DUMP_INSERT_PROCESSES" {
			p.warnf(v.line, "%s: ignored: a count of collector insert processes, not an export list", v.key)
			continue
		}
		items := list(v, TCP)
		if mode != Recording {
			p.warnf(v.line, "%s: ignored: export applies to Recording mode only", v.key)
			continue
		}
		for _, it := range items {
			if !contains(export, it) {
				export = append(export, it)
			}
		}
	}
	if mode == Recording {
		fr.Recording.Dir = LegacyDumpDir
		fr.Recording.Export = export
	} else {
		fr.Spool.Dir = LegacySpoolDir
	}

	if v, ok := get("DPI_ID"); ok {
		n, err := strconv.Atoi(v.value)
		switch {
		case err != nil || n < -1 || n > maxDPI:
			p.errorf(v.line, "%s: %q: want -1 (by index) or 0..%d", v.key, v.value, maxDPI)
		case n >= 0:
			fr.DPI = ptr(int64(n))
		}
	}
	if fr.DPI == nil {
		fr.DPI = ptr(int64(r.index))
	}

	count := func(param string, max int64) (int64, bool) {
		v, ok := get(param)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(v.value, 10, 64)
		if err != nil || n < 0 || n > max {
			p.errorf(v.line, "%s: %q: want a number 0..%d", v.key, v.value, max)
			return 0, false
		}
		return n, true
	}
	// Seconds, when not 0, override minutes; 0 minutes is the default.
	const maxRotateSeconds = 366 * 24 * 3600
	seconds, _ := count("ROTATE_DELAY_SECONDS", maxRotateSeconds)
	minutes, _ := count("ROTATE_MINUTES", maxRotateSeconds/60)
	switch {
	case seconds > 0:
		fr.Recording.RotateEvery = formatDuration(time.Duration(seconds) * time.Second)
	case minutes > 0:
		fr.Recording.RotateEvery = formatDuration(time.Duration(minutes) * time.Minute)
	}
	if n, ok := count("FW_MAX_QUEUE_SIZE", 1<<62); ok && n > 0 { // 0: by time only, the default
		fr.Recording.RotateRecords = ptr(n)
	}

	for _, param := range []string{"TASKSET", "BALANCER_TASKSET"} { // the latter wins
		v, ok := get(param)
		if !ok {
			continue
		}
		set, err := affinity.Parse(v.value)
		if err != nil {
			p.errorf(v.line, "%s: %v", v.key, err)
			continue
		}
		switch len(set) {
		case 0:
		case 1:
			fr.CPU = int64(set[0])
		default:
			fr.CPU = set.String()
		}
	}
	if v, ok := get("BALANCER_AUTO"); ok {
		switch v.value {
		case "Enabled":
			// The legacy collector records what reaches its local
			// subreceivers into its dump dir.
			fr.BalancerAuto = true
			if fr.Recording.Dir == "" {
				fr.Recording.Dir = LegacyDumpDir
			}
		case "Disabled", "":
		default:
			p.errorf(v.line, "%s: %q: want Enabled or Disabled", v.key, v.value)
		}
	}
	return fr
}
