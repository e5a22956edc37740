package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// DefaultTOML is the shipped configuration (default.toml): three receivers on
// 127.0.0.1 (fullflow 1500, clickstream 1501, dnsflow 1101) recording to
// "dump", metrics on 127.0.0.1:9740. It needs no other machine.
//
//go:embed default.toml
var DefaultTOML []byte

// Config is the whole configuration of ipfix-balancer and ipfix-loader.
// Values come from [Load], [Parse], [ParseEnv] or [Default], which fill every
// default; a Config built by hand should pass [Config.Validate] before use.
type Config struct {
	Metrics Metrics
	Console Console
	Log     Log
	// StatsEvery is the period of the stats log line; 0 turns it off
	// ([balancer] stats_every, default 60s).
	StatsEvery time.Duration
	// ShutdownTimeout bounds the flush of queues on exit
	// ([balancer] shutdown_timeout, default 5s).
	ShutdownTimeout time.Duration
	// ControlSocket is the unix socket used to hand listening sockets over
	// on restart ([balancer] control_socket); "" turns it off.
	ControlSocket string
	// Receivers are the [[receiver]] tables, in file order, then the local
	// recorders that their balancer_auto makes (AutoOf set; see
	// [Config.FileReceivers]).
	Receivers []Receiver
	Loader    Loader
}

// Metrics is the [metrics] section.
type Metrics struct {
	// Listen is the host:port of the /metrics HTTP endpoint; "" turns it off.
	Listen string
}

// Console is the [console] section: the web console served on the metrics
// listener (package console).
type Console struct {
	// Enabled serves the console at / of the metrics listener (default true).
	Enabled bool
	// Operators may change the configuration from the console, each as
	// "name:<hex SHA-256 of the name's token>". Read-only pages need no login
	// when the listener is a loopback address; beyond loopback every page
	// needs an operator. Empty: the console is read-only.
	Operators []string
}

// Operator returns the name and token hash of c.Operators[i].
func (c Console) Operator(i int) (name string, sum [32]byte, err error) {
	return parseOperator(c.Operators[i])
}

// Log is the [log] section.
type Log struct {
	// Level is "debug", "info", "warn" or "error".
	Level string
}

// Check rejects a Level that is not one of the four words.
func (l Log) Check() error {
	switch l.Level {
	case "debug", "info", "warn", "error":
		return nil
	}
	return fmt.Errorf("%q: want debug, info, warn or error", l.Level)
}

// SlogLevel returns Level as a slog.Level (slog.LevelInfo for an unknown
// level, which Validate rejects).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Receiver is one [[receiver]]: our listening socket for one stream of one DPI
// and what to do with the messages it receives.
type Receiver struct {
	// Stream is the stream label: fullflow, clickstream, dnsflow, gtpflow,
	// natflow or any other [a-z0-9_]+ word.
	Stream string
	// DPI is the index of the exporting DPI; by default the position of the
	// receiver among the receivers of its stream (0, 1, 2...).
	DPI int
	// Listen is the address to listen on. By default 0.0.0.0 and the port of
	// the stream (fullflow 1500, clickstream 1501, dnsflow 1101, gtpflow
	// 1502, natflow 1503); other streams must set it. Port 0 (tests) picks a
	// free port.
	Listen netip.AddrPort
	// Proto is the transport the DPI exports over (default TCP).
	Proto Proto
	// Mode says what to do with received messages. By default RoundRobin
	// when Subreceivers are set, Recording otherwise.
	Mode Mode
	// Subreceivers are the collectors of RoundRobin and All modes; ignored
	// in Recording mode.
	Subreceivers []Subreceiver
	// SubreceiverProto is the transport of subreceivers configured without
	// one (default TCP).
	SubreceiverProto Proto
	// CPU is the CPUs to pin the receiver's thread to; empty = unpinned.
	CPU affinity.CPUSet
	// QueueBytes is the high-water mark of each subreceiver's queue
	// (default 32 MiB, at least 64 KiB).
	QueueBytes int
	// MTU is the MTU towards UDP subreceivers: messages are re-packed to at
	// most MTU-28 bytes (IPv4) or MTU-48 (IPv6). Default 1500.
	MTU int
	// UDPReadBuffer is SO_RCVBUF of a UDP receiver in bytes (default 32 MiB;
	// 0 keeps the kernel default).
	UDPReadBuffer int
	// TemplateLifetime is how long templates of a UDP exporter stay valid
	// without being refreshed (RFC 7011 §8.4; default 30m; 0 = forever).
	TemplateLifetime time.Duration
	// Recording configures Recording mode.
	Recording Recorder
	// Spool configures the spools of RoundRobin and All modes: what waits on
	// disk for a subreceiver that is down or slow.
	Spool Spool
	// BalancerAuto (the legacy BALANCER_AUTO=Enabled) starts the
	// subreceivers that live on this host as local Recording receivers of
	// this process (see [Config.Receivers]); in RoundRobin and All modes
	// only, and it needs Recording.Dir for their dumps.
	BalancerAuto bool
	// AutoOf is, for a local recorder made by BalancerAuto, the name of
	// the receiver it records for ("fullflow/0"), and AutoSub the index of
	// its subreceiver there; "" for a receiver of the file.
	AutoOf  string
	AutoSub int
}

// Name returns the receiver's name as used in logs, metrics and errors:
// "fullflow/0" (stream/dpi).
func (r *Receiver) Name() string {
	return r.Stream + "/" + strconv.Itoa(r.DPI)
}

// Subreceiver is one destination collector of a receiver, or one re-export
// destination of a recording.
type Subreceiver struct {
	// Addr is "host:port" (net.JoinHostPort form); host is an IP address or
	// a host name.
	Addr  string
	Proto Proto
}

// String returns "tcp 10.0.0.2:9920".
func (s Subreceiver) String() string { return s.Proto.String() + " " + s.Addr }

// Recorder is the [receiver.recording] table: the dumps of Recording mode.
// (The type cannot be named Recording: that is the Mode.)
type Recorder struct {
	// Dir is the dump root; files go to <Dir>/<stream>/. Required in
	// Recording mode.
	Dir string
	// RotateEvery closes the current dump after this long (default 10m;
	// 12m for clickstream, so that its dumps cover the fullflow ones).
	RotateEvery time.Duration
	// RotateRecords also closes the dump after this many data records;
	// 0 = by time only.
	RotateRecords int64
	// Export re-exports the recorded messages to these collectors.
	Export []Subreceiver
	// QueueBytes is the high-water mark of the writer queue (default 64 MiB).
	QueueBytes int
	// MaxBytes and MaxAge cap the closed dumps kept on disk; 0 = no cap.
	MaxBytes int64
	MaxAge   time.Duration
}

// Spool is the [receiver.spool] table. Each subreceiver (All) or the
// receiver (RoundRobin) has its own spool directory under Dir, named by
// dump.SpoolDir. A reload can change MaxBytes, MinFreeBytes and Drop; Dir
// only takes effect for spools opened later (a restart): a running spool
// keeps replaying from its directory.
type Spool struct {
	// Dir is the spool root; "" = no spool (messages a subreceiver cannot
	// take are dropped and counted).
	Dir string
	// MaxBytes is the quota of each spool (default 1 GiB; 0 = none).
	MaxBytes int64
	// MinFreeBytes is the free space the spools leave on their filesystem
	// (default 256 MiB; 0 = none).
	MinFreeBytes int64
	// Drop is the end a full spool loses: "oldest" (default, also ""; whole oldest
	// segments go, the recent past is kept) or "newest" (new messages are
	// refused).
	Drop string
}

// Loader is the [loader] section: the configuration of ipfix-loader, the
// one package loader runs with (loader.New takes it as it is). [Load],
// [Parse], [ParseEnv] and [Default] fill every default from default.toml; a
// Loader built by hand should start from Default().Loader and pass
// [Loader.Validate]. What is not in the file (a logger, how long to retry)
// is loader.Options.
type Loader struct {
	// Dir is the dump root to load from (the receivers' recording dir):
	// closed dumps are <Dir>/<stream>/*.ipfix (package dump).
	Dir string
	// ClickHouse is the HTTP URL of the server ("http://127.0.0.1:8123").
	ClickHouse string
	// Database holds the tables.
	Database string
	// User and Password authenticate to ClickHouse (HTTP basic auth).
	User, Password string
	// Parallel is the number of files loaded at once (1..64).
	Parallel int
	// AfterLoad is "move" (to <Dir>/<stream>/loaded/) or "delete".
	AfterLoad string
	// Retention is the TTL of the raw tables; 0 keeps them forever. Raw
	// tables are partitioned by hour, so a row is dropped between Retention
	// and Retention + 1h + 5m after its time.
	Retention time.Duration
	// AggregateRetention keeps the aggregated tables (partitioned by month:
	// a month goes once all of it is older); 0 keeps them forever.
	AggregateRetention time.Duration
	// FullflowAgg and ClickstreamAgg are the group-by columns and period of
	// fullflow_agg and clickstream_agg (the legacy collector's by default).
	// A changed one applies once its table and view are dropped: the loader
	// makes them anew. The loader checks the column names.
	FullflowAgg, ClickstreamAgg Aggregate
	// NAT is the NAT log: events derived from fullflow, and natflow_agg's
	// fields and interval.
	NAT NAT
	// BatchRows is the number of rows per INSERT (1..1000000).
	BatchRows int
	// PollEvery is how often the dump directories are scanned.
	PollEvery time.Duration
	// Cluster, when set, shards the raw tables over this ClickHouse cluster
	// (remote_servers): MergeTree tables <table>_local on every shard and a
	// Distributed table <table> on each for queries.
	Cluster string
	// ShardingKey is the column (or comma-separated columns, first present
	// wins) whose value picks a row's shard, so that a subscriber's rows
	// live on one shard; required with Cluster.
	ShardingKey string
	// Shards are the HTTP URLs of the cluster's shards, in shard order;
	// empty: taken from system.clusters with the port of ClickHouse.
	Shards []string
	// MetricsListen is where ipfix-loader serves /metrics ("" = off); the
	// balancer's [metrics] port would clash when both run on one host.
	MetricsListen string
	// Dictionaries is the dictionary dir (<dir>/<name>/*.txt, the legacy
	// collector's /var/qoestor/backend/etc/db); "" = none (package
	// loader/dict).
	Dictionaries string
	// TrafficDirDefMode, SubscriberFilterMode and SubscriberExcludeMode are
	// the legacy collector's modes 0..4 (0: off), applied to fullflow and
	// clickstream rows at load; non-zero ones need Dictionaries.
	TrafficDirDefMode, SubscriberFilterMode, SubscriberExcludeMode int
	// ReplaceLoginWithVChannel is 0 (off), 1 (always) or 2 (when the login
	// is empty); UseDicWhenReplacingLogin takes the vchannel's name from
	// vchannel_name_dic.
	ReplaceLoginWithVChannel int
	UseDicWhenReplacingLogin bool
}

// Aggregate configures an aggregated table: the raw columns it groups by and
// the period its time column is rounded down to (whole minutes dividing a
// day). The sums are fixed: fullflow_agg has bytes, packets and flows,
// clickstream_agg requests.
type Aggregate struct {
	Fields []string
	Period time.Duration
}

// NAT is the legacy collector's NAT log settings: NAT_IMPORT_FROM_FULLFLOW,
// NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK and NAT_AGG_LOG_GROUP_TIME_INTERVAL.
type NAT struct {
	// ImportFromFullflow derives a NAT event from every fullflow row with a
	// post-NAT IPv4 source address.
	ImportFromFullflow bool
	// AggFields is the bitmask of the natflow columns natflow_agg keeps
	// (0..0x7ff, the eleven fields of the manual, bit 0x1 first); the others
	// hold 0 or '' there. 0 keeps counts per interval only.
	AggFields uint16
	// AggInterval is the period natflow_agg's time is rounded down to: 1, 5,
	// 10, 15, 30 or 60 minutes.
	AggInterval time.Duration
}

// NATAggFieldsAll is the largest NAT.AggFields: every one of the eleven
// fields (loader.NATAggFields names them).
const NATAggFieldsAll = 1<<11 - 1

// NATAggIntervals are the values NAT.AggInterval (the legacy
// NAT_AGG_LOG_GROUP_TIME_INTERVAL) allows.
var NATAggIntervals = []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}

// Mode is what a receiver does with the messages it receives.
type Mode uint8

// Modes. The zero Mode is invalid.
const (
	// RoundRobin sends each message to the next live subreceiver in turn.
	RoundRobin Mode = iota + 1
	// All sends every message to every subreceiver.
	All
	// Recording writes messages to rotated dump files (IPFIX files,
	// RFC 5655) and optionally re-exports them. The legacy word "Disabled"
	// (balancing disabled) means Recording.
	Recording
)

// String returns the config word: "RoundRobin", "All" or "Recording".
func (m Mode) String() string {
	switch m {
	case RoundRobin:
		return "RoundRobin"
	case All:
		return "All"
	case Recording:
		return "Recording"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText returns the config word; it fails for an invalid Mode.
func (m Mode) MarshalText() ([]byte, error) {
	if m < RoundRobin || m > Recording {
		return nil, fmt.Errorf("%s: bad mode", m)
	}
	return []byte(m.String()), nil
}

// UnmarshalText parses a mode, ignoring case: "RoundRobin", "All",
// "Recording", or the legacy "Disabled" (= Recording).
func (m *Mode) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "roundrobin":
		*m = RoundRobin
	case "all":
		*m = All
	case "recording", "disabled":
		*m = Recording
	default:
		return fmt.Errorf("%q: bad mode (want RoundRobin, All or Recording)", b)
	}
	return nil
}

// Proto is a transport protocol. The zero Proto is TCP.
type Proto uint8

// Protocols.
const (
	TCP Proto = iota
	UDP
)

// String returns "tcp" or "udp".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "Proto(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText returns "tcp" or "udp"; it fails for an invalid Proto.
func (p Proto) MarshalText() ([]byte, error) {
	if p > UDP {
		return nil, fmt.Errorf("%s: bad proto", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses "tcp" or "udp", ignoring case.
func (p *Proto) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "tcp":
		*p = TCP
	case "udp":
		*p = UDP
	default:
		return fmt.Errorf("%q: bad proto (want tcp or udp)", b)
	}
	return nil
}

// Default returns the shipped configuration, [DefaultTOML] decoded: a complete,
// valid value. Each call returns a new Config.
func Default() *Config {
	f, err := decodeDefault()
	if err != nil {
		panic("BUG: default.toml: " + err.Error())
	}
	cfg, errs := build(f)
	if errs != nil {
		panic("BUG: default.toml: " + errors.Join(errs...).Error())
	}
	return cfg
}

// Load reads and parses the configuration file at path (see [Parse]).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse parses a configuration named name (a file name, for messages).
//
// TOML is decoded onto [Default]: a section or key missing from data keeps its
// default, except that the [[receiver]] tables of data, when there are any,
// replace the default receivers. Per-receiver defaults are then filled (port
// and rotation by stream, dpi by order), every key the decoder did not use is
// an error, and the result is validated. All problems are reported at once,
// joined, in file order, each as "name:line: problem"
// ("test.toml:12: unknown key receiver[0].recording.rotate_evry"); a TOML
// syntax or type error is reported alone, with its line (and column and a
// caret for syntax).
//
// When name ends in ".env" or data holds legacy IPFIX_<STREAM>_<PARAM>[N]=
// lines, data is parsed with [ParseEnv] instead and its warnings are logged
// with slog.
func Parse(data []byte, name string) (*Config, error) {
	if strings.HasSuffix(name, ".env") || looksLikeEnv(data) {
		cfg, warnings, err := ParseEnv(data, name)
		for _, w := range warnings {
			slog.Warn("legacy config setting", "file", name, "warning", w)
		}
		return cfg, err
	}
	base, err := decodeDefault()
	if err != nil {
		panic("BUG: default.toml: " + err.Error())
	}
	return parseTOML(data, name, base)
}

// looksLikeEnv reports whether data is a legacy .env file: a line (after
// blanks and an optional "export ") starts with IPFIX_ and holds an '='.
// No line of a valid configuration TOML does: its keys are lower case.
func looksLikeEnv(data []byte) bool {
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if rest, ok := bytes.CutPrefix(line, []byte("export")); ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			line = bytes.TrimSpace(rest)
		}
		if bytes.HasPrefix(line, []byte("IPFIX_")) && bytes.IndexByte(line, '=') > 0 {
			return true
		}
	}
	return false
}
