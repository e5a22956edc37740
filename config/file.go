package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// The file* types mirror the TOML file. Values stay as the operator wrote
// them (strings, pointers for "not set") so that build can fill defaults that
// depend on other keys and report every bad value at once with its key path.
type fileConfig struct {
	Metrics  fileMetrics    `toml:"metrics"`
	Console  fileConsole    `toml:"console"`
	Log      fileLog        `toml:"log"`
	Balancer fileBalancer   `toml:"balancer"`
	Receiver []fileReceiver `toml:"receiver"`
	Loader   fileLoader     `toml:"loader"`
}

type fileMetrics struct {
	Listen string `toml:"listen"`
}

type fileConsole struct {
	Enabled   bool     `toml:"enabled"`
	Operators []string `toml:"operators"`
}

type fileLog struct {
	Level string `toml:"level"`
}

type fileBalancer struct {
	StatsEvery      string `toml:"stats_every"`
	ShutdownTimeout string `toml:"shutdown_timeout"`
	ControlSocket   string `toml:"control_socket"`
}

type fileReceiver struct {
	Stream           string        `toml:"stream"`
	DPI              *int64        `toml:"dpi"`
	Listen           string        `toml:"listen"`
	Proto            string        `toml:"proto"`
	Mode             string        `toml:"mode"`
	Subreceivers     []string      `toml:"subreceivers"`
	SubreceiverProto string        `toml:"subreceiver_proto"`
	CPU              any           `toml:"cpu,omitempty"` // int64 or string
	QueueBytes       *int64        `toml:"queue_bytes"`
	MTU              *int64        `toml:"mtu"`
	UDPReadBuffer    *int64        `toml:"udp_read_buffer_bytes"`
	TemplateLifetime string        `toml:"template_lifetime"`
	BalancerAuto     bool          `toml:"balancer_auto,omitempty"`
	Recording        fileRecording `toml:"recording"`
	Spool            fileSpool     `toml:"spool,omitempty"`
}

type fileSpool struct {
	Dir          string `toml:"dir,omitempty"`
	MaxBytes     *int64 `toml:"max_bytes,omitempty"`
	MinFreeBytes *int64 `toml:"min_free_bytes,omitempty"`
	Drop         string `toml:"drop,omitempty"`
}

type fileRecording struct {
	Dir           string   `toml:"dir"`
	RotateEvery   string   `toml:"rotate_every"`
	RotateRecords *int64   `toml:"rotate_records"`
	Export        []string `toml:"export"`
	QueueBytes    *int64   `toml:"queue_bytes"`
	MaxBytes      *int64   `toml:"max_bytes"`
	MaxAge        string   `toml:"max_age"`
}

type fileLoader struct {
	Dir           string   `toml:"dir"`
	ClickHouse    string   `toml:"clickhouse"`
	Database      string   `toml:"database"`
	User          string   `toml:"user"`
	Password      string   `toml:"password"`
	Parallel      int64    `toml:"parallel"`
	AfterLoad     string   `toml:"after_load"`
	Retention     string   `toml:"retention"`
	BatchRows     int64    `toml:"batch_rows"`
	PollEvery     string   `toml:"poll_every"`
	Cluster       string   `toml:"cluster"`
	ShardingKey   string   `toml:"sharding_key"`
	Shards        []string `toml:"shards"`
	MetricsListen string   `toml:"metrics_listen"`
	// Enrichment (loader/dict); omitted from printed configs while off.
	Dictionaries             string `toml:"dictionaries,omitempty"`
	TrafficDirDefMode        int64  `toml:"traffic_dir_def_mode,omitzero"`
	SubscriberFilterMode     int64  `toml:"subscriber_filter_mode,omitzero"`
	SubscriberExcludeMode    int64  `toml:"subscriber_exclude_mode,omitzero"`
	ReplaceLoginWithVChannel int64  `toml:"replace_login_with_vchannel,omitzero"`
	UseDicWhenReplacingLogin bool   `toml:"use_dic_when_replacing_login,omitempty,omitzero"`
	// Aggregation and retention of the aggregates; omitted while default.
	AggregateRetention   string   `toml:"aggregate_retention,omitempty"`
	FullflowAggFields    []string `toml:"fullflow_agg_fields,omitempty"`
	FullflowAggPeriod    string   `toml:"fullflow_agg_period,omitempty"`
	ClickstreamAggFields []string `toml:"clickstream_agg_fields,omitempty"`
	ClickstreamAggPeriod string   `toml:"clickstream_agg_period,omitempty"`
	// NAT log (the legacy NAT_* settings).
	NATImportFromFullflow        bool  `toml:"nat_import_from_fullflow,omitempty,omitzero"`
	NATAggLogFieldsToSaveBitmask int64 `toml:"nat_agg_log_fields_to_save_bitmask,omitzero"`
	NATAggLogGroupTimeInterval   int64 `toml:"nat_agg_log_group_time_interval,omitzero"`
}

// Per-receiver defaults (the top-level ones live in default.toml).
const (
	defaultQueueBytes          = 32 << 20
	defaultMTU                 = 1500
	defaultUDPReadBuffer       = 32 << 20
	defaultTemplateLifetime    = 30 * time.Minute
	defaultRecordingQueueBytes = 64 << 20
	defaultRotateEvery         = 10 * time.Minute
	defaultSpoolMaxBytes       = 1 << 30
	defaultSpoolMinFreeBytes   = 256 << 20
	defaultSpoolDrop           = "oldest"
)

// defaultPorts are the legacy collector's ports per stream.
var defaultPorts = map[string]uint16{
	"fullflow":    1500,
	"clickstream": 1501,
	"dnsflow":     1101,
	"gtpflow":     1502,
	"natflow":     1503,
}

// defaultRotation returns the rotation period of a stream: the legacy
// defaults, 12m for clickstream (its dumps must cover fullflow's 10m).
func defaultRotation(stream string) time.Duration {
	if stream == "clickstream" {
		return 12 * time.Minute
	}
	return defaultRotateEvery
}

var streamRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// syntaxError is a TOML syntax error: "name:line:col: message", then the
// line with a caret under the column.
type syntaxError struct {
	name string
	err  toml.ParseError
	data []byte
}

func (e *syntaxError) Error() string {
	// The decoder counts the line of an error at a newline as the next one
	// ("[metrics\n" is reported at line 2, column 9): place it by its byte
	// offset instead.
	start := min(max(e.err.Position.Start, 0), len(e.data))
	lineStart := bytes.LastIndexByte(e.data[:start], '\n') + 1
	line := bytes.Count(e.data[:start], []byte("\n")) + 1
	col := start - lineStart + 1
	end := bytes.IndexByte(e.data[lineStart:], '\n')
	text := e.data[lineStart:]
	if end >= 0 {
		text = text[:end]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: %s\n\n", e.name, line, col, e.err.Message)
	if line > 1 {
		prevStart := bytes.LastIndexByte(e.data[:lineStart-1], '\n') + 1
		fmt.Fprintf(&b, "% 7d | %s\n", line-1, e.data[prevStart:lineStart-1])
	}
	fmt.Fprintf(&b, "% 7d | %s\n", line, text)
	// Tabs keep their width under the caret.
	pad := []byte(strings.Repeat(" ", col-1))
	for i := 0; i < col-1 && i < len(text); i++ {
		if text[i] == '\t' {
			pad[i] = '\t'
		}
	}
	fmt.Fprintf(&b, "%10s%s%s", "", pad, strings.Repeat("^", max(e.err.Position.Len, 1)))
	return b.String()
}

func (e *syntaxError) Unwrap() error { return e.err }

// decodeDefault returns default.toml decoded onto an empty fileConfig. The
// result is a copy of one shared value, its top-level slices cloned (the TOML
// decoder writes a decoded array into the slice it finds): callers may
// decode onto it but must not modify what its receivers refer to.
func decodeDefault() (*fileConfig, error) {
	f, err := defaultFile()
	if err != nil {
		return nil, err
	}
	c := *f
	c.cloneSlices()
	return &c, nil
}

// cloneSlices gives f its own copy of the top-level sections' slices, which
// the TOML decoder would otherwise overwrite in place.
func (f *fileConfig) cloneSlices() {
	f.Console.Operators = slices.Clone(f.Console.Operators)
	f.Loader.Shards = slices.Clone(f.Loader.Shards)
	f.Loader.FullflowAggFields = slices.Clone(f.Loader.FullflowAggFields)
	f.Loader.ClickstreamAggFields = slices.Clone(f.Loader.ClickstreamAggFields)
}

var defaultFile = sync.OnceValues(func() (*fileConfig, error) {
	var f fileConfig
	md, err := toml.NewDecoder(bytes.NewReader(DefaultTOML)).Decode(&f)
	if err != nil {
		return nil, err
	}
	if errs := unknownKeys(DefaultTOML, md); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &f, nil
})

// parseTOML decodes data onto base, then builds and validates the result.
// Every problem names the file and the line: "name:12: receiver[fullflow/0].mode: ...".
func parseTOML(data []byte, name string, base *fileConfig) (*Config, error) {
	f, md, err := decodeOnto(data, base)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &syntaxError{name: name, err: pe, data: data}
		}
		return nil, locateTypeError(name, data, err)
	}
	errs := unknownKeys(data, md)
	if hasWrongCase(md) {
		// The decoder matched "Mode" to mode regardless of case: decode again
		// without the keys in the wrong case, so that what they set is not
		// used and the rest of the file is still checked.
		clean, ok := withoutWrongCase(data)
		if !ok {
			return nil, errors.Join(locate(name, data, errs)...)
		}
		if f, _, err = decodeOnto(clean, base); err != nil {
			return nil, errors.Join(locate(name, data, errs)...)
		}
	}
	cfg, berrs := build(f)
	errs = append(errs, berrs...)
	if len(errs) > 0 {
		return nil, errors.Join(locate(name, data, errs)...)
	}
	return cfg, nil
}

// decodeOnto decodes data onto a copy of base.
func decodeOnto(data []byte, base *fileConfig) (*fileConfig, toml.MetaData, error) {
	f := *base
	f.cloneSlices()
	f.Receiver = nil // [[receiver]] in data replaces the defaults, never merges into them
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, md, err
	}
	if !md.IsDefined("receiver") {
		f.Receiver = base.Receiver
	}
	return &f, md, nil
}

// withoutWrongCase returns data as TOML without the keys that are not in
// lower case (reported as unknown), or false when it cannot.
func withoutWrongCase(data []byte) ([]byte, bool) {
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, false
	}
	var prune func(v any) any
	prune = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k != strings.ToLower(k) {
					delete(v, k)
					continue
				}
				v[k] = prune(x)
			}
		case []map[string]any:
			for i := range v {
				prune(v[i])
			}
		case []any:
			for i := range v {
				v[i] = prune(v[i])
			}
		}
		return v
	}
	prune(doc)
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return nil, false
	}
	return b.Bytes(), true
}

// build converts f into a Config, filling per-receiver defaults, and
// validates it. Every problem is reported; a bad value leaves its default in
// place so that Validate does not report it a second time.
func build(f *fileConfig) (*Config, []error) {
	var e errs
	c := &Config{
		Metrics:         Metrics{Listen: f.Metrics.Listen},
		Console:         Console{Enabled: f.Console.Enabled, Operators: f.Console.Operators},
		Log:             Log{Level: strings.ToLower(f.Log.Level)},
		StatsEvery:      e.duration("balancer.stats_every", f.Balancer.StatsEvery, time.Minute),
		ShutdownTimeout: e.duration("balancer.shutdown_timeout", f.Balancer.ShutdownTimeout, time.Second),
		ControlSocket:   f.Balancer.ControlSocket,
	}
	c.validateTop(&e)
	// Problems come out in file order: each receiver is checked (against the
	// ones before it) as soon as it is built.
	order := map[string]int{}
	for i := range f.Receiver {
		fr := &f.Receiver[i]
		n := len(e)
		c.Receivers = append(c.Receivers, buildReceiver(&e, i, fr, order[fr.Stream]))
		order[fr.Stream]++
		c.validateReceiver(&e, i, true)
		// Messages name the receiver "receiver[fullflow/0]"; its line is
		// found by its index in the file.
		p, idx := receiverPath(i, &c.Receivers[i]), fmt.Sprintf("receiver[%d]", i)
		for k := n; k < len(e); k++ {
			key, _, _ := strings.Cut(e[k].Error(), ": ")
			if rest, ok := strings.CutPrefix(key, p); ok {
				e[k] = &keyError{key: idx + rest, err: e[k]}
			}
		}
	}
	c.expandAuto(&e)
	c.validateHasReceivers(&e)
	c.Loader = buildLoader(&e, &f.Loader)
	c.Loader.validate(&e)
	if len(e) > 0 {
		return nil, e
	}
	return c, nil
}

// buildLoader converts the [loader] section. An aggregate's fields or period
// and the NAT interval left empty or 0 take the values of default.toml, the
// one place of every [loader] default.
func buildLoader(e *errs, fl *fileLoader) Loader {
	l := Loader{
		Dir:           fl.Dir,
		ClickHouse:    fl.ClickHouse,
		Database:      fl.Database,
		User:          fl.User,
		Password:      fl.Password,
		Parallel:      e.int("loader.parallel", fl.Parallel),
		AfterLoad:     fl.AfterLoad,
		Retention:     e.duration("loader.retention", fl.Retention, 0),
		BatchRows:     e.int("loader.batch_rows", fl.BatchRows),
		PollEvery:     e.duration("loader.poll_every", fl.PollEvery, time.Second),
		Cluster:       fl.Cluster,
		ShardingKey:   fl.ShardingKey,
		Shards:        fl.Shards,
		MetricsListen: fl.MetricsListen,

		Dictionaries:             fl.Dictionaries,
		TrafficDirDefMode:        e.int("loader.traffic_dir_def_mode", fl.TrafficDirDefMode),
		SubscriberFilterMode:     e.int("loader.subscriber_filter_mode", fl.SubscriberFilterMode),
		SubscriberExcludeMode:    e.int("loader.subscriber_exclude_mode", fl.SubscriberExcludeMode),
		ReplaceLoginWithVChannel: e.int("loader.replace_login_with_vchannel", fl.ReplaceLoginWithVChannel),
		UseDicWhenReplacingLogin: fl.UseDicWhenReplacingLogin,

		AggregateRetention: e.optDuration("loader.aggregate_retention", fl.AggregateRetention),
		FullflowAgg: Aggregate{Fields: fl.FullflowAggFields,
			Period: e.optDuration("loader.fullflow_agg_period", fl.FullflowAggPeriod)},
		ClickstreamAgg: Aggregate{Fields: fl.ClickstreamAggFields,
			Period: e.optDuration("loader.clickstream_agg_period", fl.ClickstreamAggPeriod)},

		NAT: NAT{ImportFromFullflow: fl.NATImportFromFullflow,
			AggInterval: time.Duration(e.int("loader.nat_agg_log_group_time_interval", fl.NATAggLogGroupTimeInterval)) * time.Minute},
	}
	if m := fl.NATAggLogFieldsToSaveBitmask; m < 0 || m > NATAggFieldsAll {
		e.addf("loader.nat_agg_log_fields_to_save_bitmask: %#x: want 0 .. 0x7ff (the eleven fields)", m)
	} else {
		l.NAT.AggFields = uint16(m)
	}
	if def, err := defaultFile(); err == nil {
		var ignore errs // default.toml is checked by Default
		d := &def.Loader
		if len(l.FullflowAgg.Fields) == 0 {
			l.FullflowAgg.Fields = slices.Clone(d.FullflowAggFields)
		}
		if l.FullflowAgg.Period == 0 {
			l.FullflowAgg.Period = ignore.optDuration("", d.FullflowAggPeriod)
		}
		if len(l.ClickstreamAgg.Fields) == 0 {
			l.ClickstreamAgg.Fields = slices.Clone(d.ClickstreamAggFields)
		}
		if l.ClickstreamAgg.Period == 0 {
			l.ClickstreamAgg.Period = ignore.optDuration("", d.ClickstreamAggPeriod)
		}
		if l.NAT.AggInterval == 0 {
			l.NAT.AggInterval = time.Duration(d.NATAggLogGroupTimeInterval) * time.Minute
		}
	}
	return l
}

func buildReceiver(e *errs, i int, fr *fileReceiver, order int) Receiver {
	r := Receiver{
		Stream:           fr.Stream,
		DPI:              order,
		Mode:             Recording,
		QueueBytes:       defaultQueueBytes,
		MTU:              defaultMTU,
		UDPReadBuffer:    defaultUDPReadBuffer,
		TemplateLifetime: defaultTemplateLifetime,
		Recording: Recorder{
			Dir:         fr.Recording.Dir,
			RotateEvery: defaultRotation(fr.Stream),
			QueueBytes:  defaultRecordingQueueBytes,
		},
		Spool: Spool{
			Dir:          fr.Spool.Dir,
			MaxBytes:     defaultSpoolMaxBytes,
			MinFreeBytes: defaultSpoolMinFreeBytes,
			Drop:         defaultSpoolDrop,
		},
	}
	if fr.DPI != nil {
		r.DPI = e.int(fmt.Sprintf("receiver[%d].dpi", i), *fr.DPI)
	}
	p := receiverPath(i, &r)

	port := defaultPorts[r.Stream]
	if fr.Listen == "" {
		if port == 0 && streamRE.MatchString(r.Stream) {
			e.addf("%s.listen: required: stream %s has no default port", p, r.Stream)
		}
		r.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	} else if ap, err := parseListen(fr.Listen, port); err != nil {
		e.addf("%s.listen: %w", p, err)
		r.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), 0) // reported; no more
	} else {
		r.Listen = ap
	}
	if fr.Proto != "" {
		e.text(p+".proto", fr.Proto, &r.Proto)
	}
	if fr.SubreceiverProto != "" {
		e.text(p+".subreceiver_proto", fr.SubreceiverProto, &r.SubreceiverProto)
	}
	if len(fr.Subreceivers) > 0 {
		r.Mode = RoundRobin
	}
	if fr.Mode != "" {
		e.text(p+".mode", fr.Mode, &r.Mode)
	}
	r.Subreceivers = e.subreceivers(p+".subreceivers", fr.Subreceivers, r.SubreceiverProto)
	r.BalancerAuto = fr.BalancerAuto

	switch v := fr.CPU.(type) {
	case nil:
	case int64:
		if v < 0 || v > affinity.MaxCPU {
			e.addf("%s.cpu: %d: cpu number outside 0..%d", p, v, affinity.MaxCPU)
		} else {
			r.CPU = affinity.CPUSet{int(v)}
		}
	case string:
		set, err := affinity.Parse(v)
		if err != nil {
			e.addf("%s.cpu: %w", p, err)
		}
		r.CPU = set
	default:
		e.addf("%s.cpu: want a cpu number (61) or a cpu list string (\"0-3,8\")", p)
	}

	if fr.QueueBytes != nil {
		r.QueueBytes = e.int(p+".queue_bytes", *fr.QueueBytes)
	}
	if fr.MTU != nil {
		r.MTU = e.int(p+".mtu", *fr.MTU)
	}
	if fr.UDPReadBuffer != nil {
		r.UDPReadBuffer = e.int(p+".udp_read_buffer_bytes", *fr.UDPReadBuffer)
	}
	if fr.TemplateLifetime != "" {
		r.TemplateLifetime = e.duration(p+".template_lifetime", fr.TemplateLifetime, r.TemplateLifetime)
	}

	rec := &fr.Recording
	if rec.RotateEvery != "" {
		r.Recording.RotateEvery = e.duration(p+".recording.rotate_every", rec.RotateEvery, r.Recording.RotateEvery)
	}
	if rec.RotateRecords != nil {
		r.Recording.RotateRecords = *rec.RotateRecords
	}
	r.Recording.Export = e.subreceivers(p+".recording.export", rec.Export, TCP)
	if rec.QueueBytes != nil {
		r.Recording.QueueBytes = e.int(p+".recording.queue_bytes", *rec.QueueBytes)
	}
	if rec.MaxBytes != nil {
		r.Recording.MaxBytes = *rec.MaxBytes
	}
	if rec.MaxAge != "" {
		r.Recording.MaxAge = e.duration(p+".recording.max_age", rec.MaxAge, 0)
	}
	if sp := &fr.Spool; true {
		if sp.MaxBytes != nil {
			r.Spool.MaxBytes = *sp.MaxBytes
		}
		if sp.MinFreeBytes != nil {
			r.Spool.MinFreeBytes = *sp.MinFreeBytes
		}
		if sp.Drop != "" {
			r.Spool.Drop = sp.Drop
		}
	}
	return r
}

// receiverPath names receiver i in messages: "receiver[fullflow/0]", or
// "receiver[3]" while its stream is not a valid label.
func receiverPath(i int, r *Receiver) string {
	if streamRE.MatchString(r.Stream) {
		return "receiver[" + r.Name() + "]"
	}
	return fmt.Sprintf("receiver[%d]", i)
}

// errs collects the problems of a configuration.
type errs []error

func (e *errs) addf(format string, args ...any) {
	*e = append(*e, fmt.Errorf(format, args...))
}

// duration parses s, or reports it and returns fallback.
func (e *errs) duration(path, s string, fallback time.Duration) time.Duration {
	d, err := parseDuration(s)
	if err != nil {
		e.addf("%s: %w", path, err)
		return fallback
	}
	return d
}

// optDuration is duration for a key that may be left out ("" is 0).
func (e *errs) optDuration(path, s string) time.Duration {
	if s == "" {
		return 0
	}
	return e.duration(path, s, 0)
}

func (e *errs) int(path string, v int64) int {
	if int64(int(v)) != v {
		e.addf("%s: %d: out of range", path, v)
		return 0
	}
	return int(v)
}

func (e *errs) text(path, s string, v interface{ UnmarshalText([]byte) error }) {
	if err := v.UnmarshalText([]byte(s)); err != nil {
		e.addf("%s: %w", path, err)
	}
}

// subreceivers parses a list of subreceivers and reports bad entries and
// duplicates (which would skew RoundRobin) by their index in the file.
func (e *errs) subreceivers(path string, list []string, proto Proto) []Subreceiver {
	var subs []Subreceiver
	seen := map[Subreceiver]int{}
	for j, s := range list {
		sub, err := parseSubreceiver(s, proto)
		if err != nil {
			e.addf("%s[%d]: %w", path, j, err)
			continue
		}
		if k, ok := seen[sub]; ok {
			e.addf("%s[%d]: %q: same as %s[%d]", path, j, s, path, k)
			continue
		}
		seen[sub] = j
		subs = append(subs, sub)
	}
	return subs
}

// formatOptDuration is formatDuration, "" for 0 (a key left out).
func formatOptDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return formatDuration(d)
}

// toFile is the inverse of build, for c.TOML.
func toFile(c *Config) *fileConfig {
	f := &fileConfig{
		Metrics: fileMetrics{Listen: c.Metrics.Listen},
		Console: fileConsole{Enabled: c.Console.Enabled, Operators: c.Console.Operators},
		Log:     fileLog{Level: c.Log.Level},
		Balancer: fileBalancer{
			StatsEvery:      formatDuration(c.StatsEvery),
			ShutdownTimeout: formatDuration(c.ShutdownTimeout),
			ControlSocket:   c.ControlSocket,
		},
		Loader: fileLoader{
			Dir:           c.Loader.Dir,
			ClickHouse:    c.Loader.ClickHouse,
			Database:      c.Loader.Database,
			User:          c.Loader.User,
			Password:      c.Loader.Password,
			Parallel:      int64(c.Loader.Parallel),
			AfterLoad:     c.Loader.AfterLoad,
			Retention:     formatDuration(c.Loader.Retention),
			BatchRows:     int64(c.Loader.BatchRows),
			PollEvery:     formatDuration(c.Loader.PollEvery),
			Cluster:       c.Loader.Cluster,
			ShardingKey:   c.Loader.ShardingKey,
			Shards:        c.Loader.Shards,
			MetricsListen: c.Loader.MetricsListen,

			Dictionaries:             c.Loader.Dictionaries,
			TrafficDirDefMode:        int64(c.Loader.TrafficDirDefMode),
			SubscriberFilterMode:     int64(c.Loader.SubscriberFilterMode),
			SubscriberExcludeMode:    int64(c.Loader.SubscriberExcludeMode),
			ReplaceLoginWithVChannel: int64(c.Loader.ReplaceLoginWithVChannel),
			UseDicWhenReplacingLogin: c.Loader.UseDicWhenReplacingLogin,

			AggregateRetention:   formatOptDuration(c.Loader.AggregateRetention),
			FullflowAggFields:    c.Loader.FullflowAgg.Fields,
			FullflowAggPeriod:    formatOptDuration(c.Loader.FullflowAgg.Period),
			ClickstreamAggFields: c.Loader.ClickstreamAgg.Fields,
			ClickstreamAggPeriod: formatOptDuration(c.Loader.ClickstreamAgg.Period),

			NATImportFromFullflow:        c.Loader.NAT.ImportFromFullflow,
			NATAggLogFieldsToSaveBitmask: int64(c.Loader.NAT.AggFields),
			NATAggLogGroupTimeInterval:   int64(c.Loader.NAT.AggInterval / time.Minute),
		},
	}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		if r.AutoOf != "" {
			continue // made again from its parent's balancer_auto
		}
		fr := fileReceiver{
			Stream:           r.Stream,
			DPI:              ptr(int64(r.DPI)),
			Listen:           r.Listen.String(),
			Proto:            r.Proto.String(),
			Mode:             r.Mode.String(),
			Subreceivers:     formatSubreceivers(r.Subreceivers, r.SubreceiverProto),
			SubreceiverProto: r.SubreceiverProto.String(),
			QueueBytes:       ptr(int64(r.QueueBytes)),
			MTU:              ptr(int64(r.MTU)),
			UDPReadBuffer:    ptr(int64(r.UDPReadBuffer)),
			TemplateLifetime: formatDuration(r.TemplateLifetime),
			BalancerAuto:     r.BalancerAuto,
			Recording: fileRecording{
				Dir:           r.Recording.Dir,
				RotateEvery:   formatDuration(r.Recording.RotateEvery),
				RotateRecords: ptr(r.Recording.RotateRecords),
				Export:        formatSubreceivers(r.Recording.Export, TCP),
				QueueBytes:    ptr(int64(r.Recording.QueueBytes)),
				MaxBytes:      ptr(r.Recording.MaxBytes),
				MaxAge:        formatDuration(r.Recording.MaxAge),
			},
		}
		if r.Spool.Dir != "" {
			fr.Spool = fileSpool{Dir: r.Spool.Dir, MaxBytes: ptr(r.Spool.MaxBytes),
				MinFreeBytes: ptr(r.Spool.MinFreeBytes), Drop: r.Spool.Drop}
		}
		switch len(r.CPU) {
		case 0:
		case 1:
			fr.CPU = int64(r.CPU[0])
		default:
			fr.CPU = r.CPU.String()
		}
		f.Receiver = append(f.Receiver, fr)
	}
	return f
}

func ptr[T any](v T) *T { return &v }

// TOML returns c as a complete TOML configuration, every default spelled out
// (for -print-config and convert-config). Parse of the result gives a Config
// equal to c. It fails when c does not validate.
func (c *Config) TOML() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(toFile(c)); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b.Bytes(), nil
}
