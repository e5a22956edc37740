package loader

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// Config is what the loader needs; cmd/ipfix-loader fills it from the
// [loader] section of the TOML file and the flags.
type Config struct {
	// Dir is the dump root: closed dumps are <Dir>/<stream>/*.ipfix (package dump).
	Dir string
	// ClickHouse is the HTTP URL of the server ("http://127.0.0.1:8123").
	ClickHouse string
	// Database holds the tables (default "ipfix").
	Database string
	// User and Password authenticate to ClickHouse (HTTP basic auth).
	User, Password string
	// Parallel is the number of files loaded at once (default 2).
	Parallel int
	// AfterLoad is "move" (to <Dir>/<stream>/loaded/, the default) or "delete".
	AfterLoad string
	// Retention of the raw tables; 0 keeps them forever (default 24h, the
	// legacy collector's). Raw tables are partitioned by hour, so a row is
	// dropped between Retention and Retention + 1h + 5m after its time.
	Retention time.Duration
	// AggregateRetention of the aggregated tables (partitioned by month: a
	// month goes once all of it is older); 0 (the default) keeps them forever.
	AggregateRetention time.Duration
	// FullflowAgg and ClickstreamAgg are the group-by columns and period of
	// fullflow_agg and clickstream_agg (default DefaultFullflowAgg,
	// DefaultClickstreamAgg). A changed one applies once its table and view
	// are dropped: the loader makes them anew.
	FullflowAgg, ClickstreamAgg Aggregate
	// NAT is the NAT log: events derived from fullflow, and natflow_agg's
	// fields and interval (default: none derived, counts per 5 minutes).
	NAT NAT
	// BatchRows is the number of rows per INSERT (default 100000; at most 1000000).
	BatchRows int
	// PollEvery is how often the dump directories are scanned (default 5s).
	PollEvery time.Duration
	// Cluster, when set, shards the raw tables over this ClickHouse cluster
	// (remote_servers): MergeTree tables <table>_local on every shard and a
	// Distributed table <table> on each for queries.
	Cluster string
	// ShardingKey is the column (or comma-separated columns, first present
	// wins) that picks a row's shard; default login, then the subscriber
	// address, so a subscriber's rows live on one shard.
	ShardingKey string
	// Shards are the HTTP URLs of the cluster's shards, in shard order. Empty:
	// taken from system.clusters with the port of ClickHouse.
	Shards []string
	// RetryMax bounds the backoff between retries while ClickHouse is down
	// (default 10s).
	RetryMax time.Duration
	// GiveUpAfter, when set, ends the retries of a request that keeps
	// failing this long with ErrUnreachable (ipfix-loader -once, so that a
	// cron job ends); 0 retries until the context ends (the daemon).
	GiveUpAfter time.Duration
	// Settle is how long recovery waits before counting the rows of a batch
	// whose outcome is unknown, so an insert still running on the server for a
	// killed loader is seen (default 2s).
	Settle time.Duration

	// Dictionaries is the dictionary dir (<Dictionaries>/<name>/*.txt, the
	// legacy /var/qoestor/backend/etc/db); "" loads none (package dict).
	Dictionaries string
	// DictionaryPollEvery is how often the dictionary files are checked
	// (default 2s).
	DictionaryPollEvery time.Duration
	// Policy is TRAFFIC_DIR_DEF_MODE, SUBSCRIBER_FILTER_MODE and
	// SUBSCRIBER_EXCLUDE_MODE, applied to fullflow and clickstream rows
	// (default all 0: rows as sent). Modes other than 0 need Dictionaries.
	Policy dict.Policy
	// Login is ULR_REPLACE_LOGIN_WITH_VCHANNEL and
	// ULR_USE_DIC_WHEN_REPLACING_LOGIN (default 0: the DPI's login).
	Login dict.LoginPolicy
}

// Defaults of Config.
const (
	DefaultDatabase  = "ipfix"
	DefaultParallel  = 2
	DefaultRetention = 24 * time.Hour
	DefaultBatchRows = 100_000
	DefaultPollEvery = 5 * time.Second
	maxBatchRows     = 1_000_000
)

// Default returns the default configuration.
func Default() Config {
	return Config{
		Dir:            "/var/lib/ipfix-balancer/dump",
		ClickHouse:     "http://127.0.0.1:8123",
		Database:       DefaultDatabase,
		Parallel:       DefaultParallel,
		AfterLoad:      "move",
		Retention:      DefaultRetention,
		FullflowAgg:    Aggregate{Fields: slices.Clone(DefaultFullflowAgg.Fields), Period: DefaultFullflowAgg.Period},
		ClickstreamAgg: Aggregate{Fields: slices.Clone(DefaultClickstreamAgg.Fields), Period: DefaultClickstreamAgg.Period},
		NAT:            NAT{AggInterval: DefaultNATAggInterval},
		BatchRows:      DefaultBatchRows,
		PollEvery:      DefaultPollEvery,
		RetryMax:       10 * time.Second,
		Settle:         2 * time.Second,
	}
}

func (c *Config) fill() {
	d := Default()
	if c.Database == "" {
		c.Database = d.Database
	}
	if c.Parallel == 0 {
		c.Parallel = d.Parallel
	}
	if c.AfterLoad == "" {
		c.AfterLoad = d.AfterLoad
	}
	if c.BatchRows == 0 {
		c.BatchRows = d.BatchRows
	}
	if c.PollEvery == 0 {
		c.PollEvery = d.PollEvery
	}
	if c.RetryMax == 0 {
		c.RetryMax = d.RetryMax
	}
	if c.Settle == 0 {
		c.Settle = d.Settle
	}
	if len(c.FullflowAgg.Fields) == 0 {
		c.FullflowAgg.Fields = d.FullflowAgg.Fields
	}
	if c.FullflowAgg.Period == 0 {
		c.FullflowAgg.Period = d.FullflowAgg.Period
	}
	if len(c.ClickstreamAgg.Fields) == 0 {
		c.ClickstreamAgg.Fields = d.ClickstreamAgg.Fields
	}
	if c.ClickstreamAgg.Period == 0 {
		c.ClickstreamAgg.Period = d.ClickstreamAgg.Period
	}
	if c.NAT.AggInterval == 0 {
		c.NAT.AggInterval = DefaultNATAggInterval
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("loader.dir: empty"))
	}
	if u, err := url.Parse(c.ClickHouse); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("loader.clickhouse: %q: want http://HOST:PORT", c.ClickHouse))
	}
	if c.Parallel < 1 || c.Parallel > 64 {
		errs = append(errs, fmt.Errorf("loader.parallel: %d: want 1..64", c.Parallel))
	}
	if c.AfterLoad != "move" && c.AfterLoad != "delete" {
		errs = append(errs, fmt.Errorf("loader.after_load: %q: want move or delete", c.AfterLoad))
	}
	if c.BatchRows < 1 || c.BatchRows > maxBatchRows {
		errs = append(errs, fmt.Errorf("loader.batch_rows: %d: want 1..%d", c.BatchRows, maxBatchRows))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("loader.retention: %v: negative", c.Retention))
	}
	if c.AggregateRetention < 0 {
		errs = append(errs, fmt.Errorf("loader.aggregate_retention: %v: negative", c.AggregateRetention))
	}
	for i, a := range []Aggregate{c.FullflowAgg, c.ClickstreamAgg} {
		if err := a.validate(aggKinds[i]); err != nil {
			errs = append(errs, fmt.Errorf("loader.%s: %w", aggKinds[i].name, err))
		}
	}
	if err := c.NAT.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PollEvery <= 0 {
		errs = append(errs, fmt.Errorf("loader.poll_every: %v: want > 0", c.PollEvery))
	}
	for i, s := range c.Shards {
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("loader.shards[%d]: %q: want http://HOST:PORT", i, s))
		}
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("loader: traffic direction / subscriber filter: %w", err))
	}
	if err := c.Login.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("loader: %w", err))
	}
	if c.Dictionaries == "" && (!c.Policy.Off() || c.Login.UseDict) {
		errs = append(errs, fmt.Errorf("loader.dictionaries: empty, but traffic direction %d, subscriber filter %d, exclude %d, login dictionary %v need it",
			c.Policy.Direction, c.Policy.Filter, c.Policy.Exclude, c.Login.UseDict))
	}
	if c.DictionaryPollEvery < 0 {
		errs = append(errs, fmt.Errorf("loader.dictionary_poll_every: %v: want > 0", c.DictionaryPollEvery))
	}
	if len(c.Shards) > 0 && c.Cluster == "" {
		errs = append(errs, errors.New("loader.shards: set without loader.cluster"))
	}
	return errors.Join(errs...)
}
