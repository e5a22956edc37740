package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// Limits checked by Validate.
const (
	minQueueBytes = 64 << 10
	maxQueueBytes = 1 << 40
	minMTU        = 576
	maxMTU        = 65535
	maxDPI        = 65535
	// maxSocketPath is sizeof(sockaddr_un.sun_path)-1 on Linux.
	maxSocketPath = 107
)

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	clusterRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Validate checks c and reports every problem at once (errors.Join), each as
// key path, value and problem:
//
//	receiver[clickstream/1].subreceivers[2]: "10.0.0.3/34x0": bad port
//
// Besides the value of each key it checks that no two receivers listen on
// the same address and protocol or share stream and dpi, that RoundRobin and
// All have subreceivers and Recording a dump directory.
func (c *Config) Validate() error {
	var e errs
	c.validateTop(&e)
	for i := range c.Receivers {
		c.validateReceiver(&e, i, false)
	}
	c.validateHasReceivers(&e)
	c.Loader.validate(&e)
	return errors.Join(e...)
}

func (c *Config) validateTop(e *errs) {
	if c.Metrics.Listen != "" {
		if err := checkHostPort(c.Metrics.Listen); err != nil {
			e.addf("metrics.listen: %w", err)
		}
	}
	names := map[string]bool{}
	for i := range c.Console.Operators {
		name, _, err := c.Console.Operator(i)
		if err != nil {
			e.addf("console.operators[%d]: %w", i, err)
			continue
		}
		if names[name] {
			e.addf("console.operators[%d]: %q: operator named twice", i, name)
		}
		names[name] = true
	}
	if err := c.Log.Check(); err != nil {
		e.addf("log.level: %v", err)
	}
	if c.StatsEvery < 0 {
		e.addf("balancer.stats_every: %s: negative", c.StatsEvery)
	}
	if c.ShutdownTimeout <= 0 {
		e.addf("balancer.shutdown_timeout: %s: must be positive", c.ShutdownTimeout)
	}
	if len(c.ControlSocket) > maxSocketPath {
		e.addf("balancer.control_socket: %q: longer than %d bytes, too long for a unix socket", c.ControlSocket, maxSocketPath)
	} else if strings.IndexByte(c.ControlSocket, 0) >= 0 {
		e.addf("balancer.control_socket: %q: NUL byte in path", c.ControlSocket)
	}
}

func (c *Config) validateHasReceivers(e *errs) {
	if len(c.Receivers) == 0 {
		e.addf("receiver: no receivers")
	}
}

// validateReceiver checks receiver i, and against the receivers before it.
// Subreceivers that build parsed were checked then, by their index in the
// file; parsed skips them.
func (c *Config) validateReceiver(e *errs, i int, parsed bool) {
	r := &c.Receivers[i]
	p := receiverPath(i, r)
	if !streamRE.MatchString(r.Stream) {
		e.addf("%s.stream: %q: want a label of a-z, 0-9 and _ (fullflow, clickstream, dnsflow...)", p, r.Stream)
	}
	if r.DPI < 0 || r.DPI > maxDPI {
		e.addf("%s.dpi: %d: outside 0..%d", p, r.DPI, maxDPI)
	}
	if !r.Listen.IsValid() {
		e.addf("%s.listen: missing", p)
	}
	if r.Proto > UDP {
		e.addf("%s.proto: %s: want tcp or udp", p, r.Proto)
	}
	if r.SubreceiverProto > UDP {
		e.addf("%s.subreceiver_proto: %s: want tcp or udp", p, r.SubreceiverProto)
	}
	for j := range i {
		o := &c.Receivers[j]
		if o.Stream == r.Stream && o.DPI == r.DPI {
			e.addf("%s: duplicate stream and dpi (receivers %d and %d)", p, j, i)
		}
		if o.Proto == r.Proto && r.Listen.Port() != 0 && o.Listen.Port() == r.Listen.Port() &&
			overlaps(o.Listen.Addr(), r.Listen.Addr()) {
			e.addf("%s.listen: %s %s: already used by %s (%s %s)", p, r.Proto, r.Listen, receiverPath(j, o), o.Proto, o.Listen)
		}
	}

	switch r.Mode {
	case RoundRobin, All:
		if len(r.Subreceivers) == 0 {
			e.addf("%s.subreceivers: mode %s needs at least one subreceiver", p, r.Mode)
		}
	case Recording:
		if r.Recording.Dir == "" {
			e.addf("%s.recording.dir: mode Recording needs a dump directory", p)
		}
	default:
		e.addf("%s.mode: %s: want RoundRobin, All or Recording", p, r.Mode)
	}
	if !parsed {
		validateSubreceivers(e, p+".subreceivers", r.Subreceivers)
		validateSubreceivers(e, p+".recording.export", r.Recording.Export)
	}
	for k, cpu := range r.CPU {
		if cpu < 0 || cpu > affinity.MaxCPU {
			e.addf("%s.cpu: %d: cpu number outside 0..%d", p, cpu, affinity.MaxCPU)
			break
		}
		if k > 0 && cpu <= r.CPU[k-1] {
			e.addf("%s.cpu: %v: not sorted, or a cpu twice", p, []int(r.CPU))
			break
		}
	}
	if r.QueueBytes < minQueueBytes || r.QueueBytes > maxQueueBytes {
		e.addf("%s.queue_bytes: %d: outside %d..%d", p, r.QueueBytes, minQueueBytes, maxQueueBytes)
	}
	if r.MTU < minMTU || r.MTU > maxMTU {
		e.addf("%s.mtu: %d: outside %d..%d", p, r.MTU, minMTU, maxMTU)
	}
	if r.UDPReadBuffer < 0 || r.UDPReadBuffer > 1<<31-1 {
		e.addf("%s.udp_read_buffer_bytes: %d: outside 0..%d", p, r.UDPReadBuffer, 1<<31-1)
	}
	if r.TemplateLifetime < 0 {
		e.addf("%s.template_lifetime: %s: negative", p, r.TemplateLifetime)
	}

	rec := &r.Recording
	if strings.IndexByte(rec.Dir, 0) >= 0 {
		e.addf("%s.recording.dir: %q: NUL byte in path", p, rec.Dir)
	}
	if rec.RotateEvery < time.Second {
		e.addf("%s.recording.rotate_every: %s: below the minimum 1s", p, formatDuration(rec.RotateEvery))
	}
	if rec.RotateRecords < 0 {
		e.addf("%s.recording.rotate_records: %d: negative", p, rec.RotateRecords)
	}
	if rec.QueueBytes < minQueueBytes || rec.QueueBytes > maxQueueBytes {
		e.addf("%s.recording.queue_bytes: %d: outside %d..%d", p, rec.QueueBytes, minQueueBytes, maxQueueBytes)
	}
	if rec.MaxBytes < 0 {
		e.addf("%s.recording.max_bytes: %d: negative", p, rec.MaxBytes)
	}
	if rec.MaxAge < 0 {
		e.addf("%s.recording.max_age: %s: negative", p, rec.MaxAge)
	}

	sp := &r.Spool
	if strings.IndexByte(sp.Dir, 0) >= 0 {
		e.addf("%s.spool.dir: %q: NUL byte in path", p, sp.Dir)
	}
	if sp.MaxBytes < 0 {
		e.addf("%s.spool.max_bytes: %d: negative", p, sp.MaxBytes)
	}
	if sp.MinFreeBytes < 0 {
		e.addf("%s.spool.min_free_bytes: %d: negative", p, sp.MinFreeBytes)
	}
	if sp.Drop != "" && sp.Drop != "oldest" && sp.Drop != "newest" {
		e.addf("%s.spool.drop: %q: want oldest or newest", p, sp.Drop)
	}
}

// validateSubreceivers checks subreceivers built by hand (parsed ones are
// valid) and rejects duplicates, which would skew RoundRobin.
func validateSubreceivers(e *errs, path string, subs []Subreceiver) {
	for j, s := range subs {
		if sub, err := parseSubreceiver(s.Addr, s.Proto); err != nil || sub.Addr != s.Addr || s.Proto > UDP {
			e.addf("%s[%d]: %q: want host:port", path, j, s.Addr)
			continue
		}
		for k := range j {
			if subs[k] == s {
				e.addf("%s[%d]: %q: same as %s[%d]", path, j, s.Addr, path, k)
				break
			}
		}
	}
}

// overlaps reports whether sockets bound to a and b on one port collide:
// equal addresses, or a wildcard covering the other ("::" is dual-stack).
func overlaps(a, b netip.Addr) bool {
	covers := func(w, x netip.Addr) bool {
		return w.IsUnspecified() && (w.Is6() || x.Is4() || x.Is4In6())
	}
	return a == b || covers(a, b) || covers(b, a)
}

// checkHostPort checks a listen address of the form host:port.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port", s)
	}
	if _, ok := parsePort(port); !ok {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// Validate reports every problem of l at once, each with its key
// ("loader.parallel: 0: outside 1..64"): for a Loader built or changed by
// hand (ipfix-loader's flags, tests). The loader also checks the aggregates'
// column names, which only it knows.
func (l *Loader) Validate() error {
	var e errs
	l.validate(&e)
	return errors.Join(e...)
}

func (l *Loader) validate(e *errs) {
	if l.Dir == "" {
		e.addf("loader.dir: missing")
	}
	if u, err := url.Parse(l.ClickHouse); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.addf("loader.clickhouse: %q: want an http:// or https:// URL", l.ClickHouse)
	}
	if !identRE.MatchString(l.Database) {
		e.addf("loader.database: %q: bad database name", l.Database)
	}
	if l.Parallel < 1 || l.Parallel > 64 {
		e.addf("loader.parallel: %d: outside 1..64", l.Parallel)
	}
	if l.AfterLoad != "move" && l.AfterLoad != "delete" {
		e.addf("loader.after_load: %q: want move or delete", l.AfterLoad)
	}
	if l.Retention < 0 {
		e.addf("loader.retention: %s: negative", l.Retention)
	}
	if l.AggregateRetention < 0 {
		e.addf("loader.aggregate_retention: %s: negative", l.AggregateRetention)
	}
	for _, p := range []struct {
		key string
		v   time.Duration
	}{{"fullflow_agg_period", l.FullflowAgg.Period}, {"clickstream_agg_period", l.ClickstreamAgg.Period}} {
		if p.v < time.Minute || p.v > 24*time.Hour || p.v%time.Minute != 0 || (24*time.Hour)%p.v != 0 {
			e.addf("loader.%s: %s: want whole minutes dividing a day (1m .. 24h)", p.key, p.v)
		}
	}
	if l.NAT.AggFields > NATAggFieldsAll {
		e.addf("loader.nat_agg_log_fields_to_save_bitmask: %#x: want 0 .. 0x7ff (the eleven fields)", l.NAT.AggFields)
	}
	if !slices.Contains(NATAggIntervals, l.NAT.AggInterval) {
		e.addf("loader.nat_agg_log_group_time_interval: %s: want 1, 5, 10, 15, 30 or 60 (minutes)", natInterval(l.NAT.AggInterval))
	}
	if l.BatchRows < 1 || l.BatchRows > maxBatchRows {
		e.addf("loader.batch_rows: %d: outside 1..%d", l.BatchRows, maxBatchRows)
	}
	if l.PollEvery < 100*time.Millisecond {
		e.addf("loader.poll_every: %s: below the minimum 100ms", l.PollEvery)
	}
	for _, m := range []struct {
		key string
		v   int
	}{{"traffic_dir_def_mode", l.TrafficDirDefMode}, {"subscriber_filter_mode", l.SubscriberFilterMode}, {"subscriber_exclude_mode", l.SubscriberExcludeMode}} {
		if m.v < 0 || m.v > 4 {
			e.addf("loader.%s: %d: want 0..4 (0 off, 1 by AS, 2 by CIDR, 3 both, 4 either)", m.key, m.v)
		} else if m.v != 0 && l.Dictionaries == "" {
			e.addf("loader.%s: %d: needs loader.dictionaries", m.key, m.v)
		}
	}
	if l.ReplaceLoginWithVChannel < 0 || l.ReplaceLoginWithVChannel > 2 {
		e.addf("loader.replace_login_with_vchannel: %d: want 0..2 (0 off, 1 always, 2 when the login is empty)", l.ReplaceLoginWithVChannel)
	}
	if l.UseDicWhenReplacingLogin && l.Dictionaries == "" {
		e.addf("loader.use_dic_when_replacing_login: needs loader.dictionaries")
	}
	if l.Cluster != "" {
		if !clusterRE.MatchString(l.Cluster) {
			e.addf("loader.cluster: %q: bad cluster name", l.Cluster)
		}
		if strings.TrimSpace(l.ShardingKey) == "" {
			e.addf("loader.sharding_key: missing: a cluster needs a sharding key")
		}
	} else if len(l.Shards) > 0 {
		e.addf("loader.shards: set without loader.cluster")
	}
	for i, s := range l.Shards {
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			e.addf("loader.shards[%d]: %q: want http://HOST:PORT", i, s)
		}
	}
}

// maxBatchRows bounds loader.batch_rows: the loader holds a batch in memory.
const maxBatchRows = 1_000_000

// natInterval prints a NAT interval in the file's unit, minutes ("15"), or
// as a duration when it is not whole minutes.
func natInterval(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10)
	}
	return d.String()
}

// Warnings returns what is valid but will not work as written on this
// machine: a receiver pinned to a CPU this process cannot run on (it runs
// unpinned). -check-config prints them.
func (c *Config) Warnings() []string {
	var w []string
	for i := range c.Receivers {
		r := &c.Receivers[i]
		missing := affinity.Missing(r.CPU)
		if len(missing) == 0 {
			continue
		}
		word := "cpu"
		if len(missing) > 1 {
			word = "cpus"
		}
		w = append(w, fmt.Sprintf("%s.cpu: %s: no %s %s on this machine (it has %s); the receiver will run unpinned",
			receiverPath(i, r), r.CPU, word, missing, affinity.Online()))
	}
	return w
}

var operatorRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]+$`)

// parseOperator parses "name:<64 hex digits>" (a console operator and the
// SHA-256 of its token).
func parseOperator(s string) (name string, sum [32]byte, err error) {
	name, h, ok := strings.Cut(s, ":")
	if !ok || !operatorRE.MatchString(name) {
		return "", sum, fmt.Errorf("%q: want name:sha256hex (name of A-Z, a-z, 0-9, _ . @ -)", redactOperator(s))
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(sum) {
		return "", sum, fmt.Errorf("%q: want name:sha256hex, the token hash as 64 hex digits (sha256sum)", redactOperator(s))
	}
	copy(sum[:], b)
	return name, sum, nil
}

// redactOperator keeps a mistyped token hash out of error messages.
func redactOperator(s string) string {
	if name, _, ok := strings.Cut(s, ":"); ok {
		return name + ":…"
	}
	return "…"
}
