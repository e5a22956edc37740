package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// Loader loads closed dumps into ClickHouse exactly once.
type Loader struct {
	cfg    config.Loader
	opts   Options
	policy dict.Policy      // cfg's TrafficDirDefMode, SubscriberFilterMode, SubscriberExcludeMode
	login  dict.LoginPolicy // cfg's ReplaceLoginWithVChannel, UseDicWhenReplacingLogin
	log    *slog.Logger
	main   *Client   // the server named in the config: ledger, queries
	shards []*Client // where rows go: [main], or each shard of the cluster
	slots  []uint16  // shard by hash slot (weights)
	schema *schema
	m      *loaderMetrics
	em     *enrichMetrics
	dicts  *dict.Watcher // nil without a dictionary dir

	mu            sync.Mutex
	ready         bool                       // migrated, shards known
	serverColumns map[string]map[string]bool // by table: columns on the server
	busy          map[string]bool            // dumps being loaded
	failed        map[string]time.Time       // dumps that failed: not before
	shapes        map[string]bool            // unmapped template shapes logged
	dictTables    *DictTables                // where dictionaries are published, once migrated
	lastFailLog   time.Time
	gaveUp        atomic.Bool // a request failed for GiveUpAfter: fail fast from now on
	lastSkipLog   time.Time
}

// ErrUnreachable is returned when ClickHouse kept failing for
// Options.GiveUpAfter (ipfix-loader -once): the dumps not loaded stay for the
// next run.
var ErrUnreachable = errors.New("clickhouse unreachable")

// New checks cfg and returns an inert loader: no connection is made until
// Migrate, Run, RunOnce or Status.
func New(cfg config.Loader, opts Options) (*Loader, error) {
	opts = opts.WithDefaults()
	if err := check(&cfg, &opts); err != nil {
		return nil, err
	}
	c, err := NewClient(cfg.ClickHouse, cfg.User, cfg.Password)
	if err != nil {
		return nil, err
	}
	l := &Loader{
		cfg:    cfg,
		opts:   opts,
		log:    opts.Log,
		main:   c,
		schema: newSchema(cfg.Database, cfg.Cluster, cfg.ShardingKey, cfg.Retention, cfg.FullflowAgg, cfg.ClickstreamAgg),
		m:      newLoaderMetrics(TableNames(), AggregateNames()),
		busy:   map[string]bool{},
		failed: map[string]time.Time{},
		shapes: map[string]bool{},
	}
	l.schema.nat = cfg.NAT
	l.policy, l.login = policies(&cfg)
	l.em = newEnrichMetrics(l.m.set)
	if l.dicts, err = l.newDicts(); err != nil {
		return nil, err
	}
	return l, nil
}

// Metrics returns the loader's metric set (register it to expose it).
func (l *Loader) Metrics() *metrics.Set { return l.m.set }

// Close releases idle connections.
func (l *Loader) Close() error {
	for _, c := range l.shards {
		c.CloseIdle()
	}
	l.main.CloseIdle()
	return nil
}

// Migrate detects what the server supports and creates the database, the
// tables, the views and the ledger (on every shard of a cluster). It is
// idempotent and makes one attempt.
func (l *Loader) Migrate(ctx context.Context) error {
	return l.migrate(ctx)
}

func (l *Loader) migrate(ctx context.Context) error {
	caps, err := DetectCapabilities(ctx, l.main)
	if err != nil {
		return err
	}
	if err := l.setupShards(ctx); err != nil {
		return err
	}
	l.schema.caps = caps
	if err := l.schema.migrate(ctx, l.targets()); err != nil {
		return err
	}
	cols := map[string]map[string]bool{}
	for _, t := range l.schema.tables {
		m, err := columnsOf(ctx, l.shards[0], l.cfg.Database, l.schema.localName(t.spec.name))
		if err != nil {
			return err
		}
		cols[t.spec.name] = m
	}
	l.mu.Lock()
	l.serverColumns = cols
	l.ready = true
	l.dictTables = NewDictTables(l.cfg.Database, caps, l.targets()...)
	l.mu.Unlock()
	l.log.Info("schema ready", "clickhouse", l.main.URL(), "database", l.cfg.Database, "server", caps.String(), "shards", len(l.shards))
	return nil
}

// targets are the servers that hold the schema: the server, or every shard
// of the cluster and the server named in the config.
func (l *Loader) targets() []*Client {
	targets := l.shards
	if l.cfg.Cluster == "" {
		targets = []*Client{l.main}
	} else if !containsClient(targets, l.main) {
		targets = append(append([]*Client(nil), targets...), l.main)
	}
	return targets
}

func containsClient(cs []*Client, c *Client) bool {
	for _, x := range cs {
		if x.URL() == c.URL() {
			return true
		}
	}
	return false
}

// setupShards finds the shards: [main] without a cluster; else the
// configured shard URLs or those of system.clusters with main's HTTP port.
func (l *Loader) setupShards(ctx context.Context) error {
	if l.shards != nil {
		return nil
	}
	if l.cfg.Cluster == "" {
		l.shards, l.slots = []*Client{l.main}, []uint16{0}
		return nil
	}
	rows, err := l.main.Query(ctx, "SELECT shard_num, shard_weight, host_address FROM system.clusters WHERE cluster = "+
		literal(l.cfg.Cluster)+" AND replica_num = 1 ORDER BY shard_num")
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("cluster %q: not in system.clusters of %s (remote_servers)", l.cfg.Cluster, l.main.URL())
	}
	if len(l.cfg.Shards) > 0 && len(l.cfg.Shards) != len(rows) {
		return fmt.Errorf("cluster %q: %d shards in remote_servers, %d in loader.shards", l.cfg.Cluster, len(rows), len(l.cfg.Shards))
	}
	mainURL, _ := url.Parse(l.main.URL())
	var shards []*Client
	var slots []uint16
	for i, r := range rows {
		u := ""
		if len(l.cfg.Shards) > 0 {
			u = l.cfg.Shards[i]
		} else {
			u = "http://" + hostPort(r[2], mainURL.Port())
		}
		c, err := NewClient(u, l.cfg.User, l.cfg.Password)
		if err != nil {
			return err
		}
		shards = append(shards, c)
		w, _ := strconv.Atoi(r[1])
		for range max(w, 1) {
			slots = append(slots, uint16(i))
		}
	}
	l.shards, l.slots = shards, slots
	return nil
}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// retry runs fn until it succeeds or ctx ends, with exponential backoff up
// to opts.RetryMax: a transient fault (ClickHouse down, refusing, timing out)
// never ends the loader.
//
// With Config.GiveUpAfter set it returns ErrUnreachable once fn has failed
// that long, and at the first failure after that.
func (l *Loader) retry(ctx context.Context, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	start := time.Now()
	for {
		err := fn()
		if err == nil {
			l.m.up.Store(1)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.noteFailure(what, err)
		if after := l.opts.GiveUpAfter; after > 0 && (l.gaveUp.Load() || time.Since(start) >= after) {
			l.gaveUp.Store(true)
			return fmt.Errorf("%w: %s still failing after %s: %w", ErrUnreachable, what, time.Since(start).Round(time.Second), err)
		}
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, l.opts.RetryMax)
		if code := ErrorCode(err); what != "migrate" && (code == codeUnknownTable || code == codeUnknownDatabase) {
			// Someone dropped a table or the database: create it again.
			if err := l.migrate(ctx); err != nil {
				l.noteFailure("migrate", err)
			}
		}
	}
}

// noteFailure counts a failed request and logs at most one per 5 seconds.
func (l *Loader) noteFailure(what string, err error) {
	l.m.retries.Inc()
	l.m.errors[errClickHouse].Inc()
	l.m.up.Store(0)
	l.mu.Lock()
	logIt := time.Since(l.lastFailLog) >= 5*time.Second
	if logIt {
		l.lastFailLog = time.Now()
	}
	l.mu.Unlock()
	if logIt {
		l.log.Warn("clickhouse request failed, retrying", "op", what, "err", err)
	}
}

func (l *Loader) logShape(d Dump, t *ipfix.Template) {
	s := shape(t)
	l.mu.Lock()
	seen := l.shapes[s] || len(l.shapes) >= 1000
	l.shapes[s] = true
	l.mu.Unlock()
	if !seen {
		l.log.Warn("template has no table, its records are counted and skipped", "file", d.Name, "template_id", t.ID, "shape", s)
	}
}

// ensureReady migrates (retrying) once per process.
func (l *Loader) ensureReady(ctx context.Context) error {
	l.mu.Lock()
	ready := l.ready
	l.mu.Unlock()
	if ready {
		return nil
	}
	return l.retry(ctx, "migrate", func() error { return l.migrate(ctx) })
}

// RunOnce loads every closed dump there is, then returns. Dumps that fail
// (unreadable) are reported in the error.
func (l *Loader) RunOnce(ctx context.Context) error {
	unlock, err := dump.LockDir(l.cfg.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.ensureReady(ctx); err != nil {
		return err
	}
	if err := l.loadDicts(ctx); err != nil {
		return err
	}
	l.dropExpired(ctx)
	var errs []error
	tried := map[string]bool{}
	for {
		dumps, err := l.scan()
		if err != nil {
			return err
		}
		var todo []Dump
		for _, d := range dumps {
			if !tried[d.Path] {
				todo = append(todo, d)
			}
		}
		if len(todo) == 0 {
			return errors.Join(errs...)
		}
		for _, d := range todo {
			tried[d.Path] = true
		}
		errs = append(errs, l.loadAll(ctx, todo)...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Run loads dumps as they close until ctx ends, and drops expired
// partitions every dropEvery.
func (l *Loader) Run(ctx context.Context) error {
	l.log.Info("loader started", "dir", l.cfg.Dir, "clickhouse", l.main.URL(), "database", l.cfg.Database,
		"parallel", l.cfg.Parallel, "after_load", l.cfg.AfterLoad)
	unlock, err := dump.LockDir(l.cfg.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.ensureReady(ctx); err != nil {
		return nil // ctx ended
	}
	if err := l.loadDicts(ctx); err != nil {
		return err
	}
	if l.dicts != nil {
		dctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = l.dicts.Run(dctx)
		}()
		defer func() {
			stop()
			<-done
		}()
	}
	var lastDrop time.Time
	for {
		if time.Since(lastDrop) >= dropEvery {
			l.dropExpired(ctx)
			lastDrop = time.Now()
		}
		dumps, err := l.scan()
		if err != nil {
			l.log.Error("scan dumps", "dir", l.cfg.Dir, "err", err)
		}
		now := time.Now()
		var todo []Dump
		l.mu.Lock()
		for _, d := range dumps {
			if t, ok := l.failed[d.Path]; !ok || now.After(t) {
				todo = append(todo, d)
			}
		}
		l.mu.Unlock()
		for _, err := range l.loadAll(ctx, todo) {
			l.log.Error("load dump", "err", err)
		}
		if !sleepCtx(ctx, l.cfg.PollEvery) {
			return nil
		}
	}
}

// scan lists the backlog, updates its gauges and quarantines misnamed dumps.
func (l *Loader) scan() ([]Dump, error) {
	dumps, bad, err := scanDumps(l.cfg.Dir)
	if err != nil {
		l.m.errors[errIO].Inc()
		return nil, fmt.Errorf("scan %s: %w", l.cfg.Dir, err)
	}
	for _, p := range bad {
		l.m.errors[errName].Inc()
		l.m.filesBad.Inc()
		why := fmt.Sprintf("file: %s\nerror: name is not %s (offset 0: not read)\n", p, dump.Grammar)
		if err := dump.Quarantine(p, why); err != nil {
			l.log.Error("quarantine misnamed dump", "file", p, "err", err)
		} else {
			l.log.Warn("dump quarantined", "file", p, "err", "misnamed")
		}
	}
	var size int64
	for _, d := range dumps {
		size += d.Size
	}
	l.m.backlogFiles.Store(int64(len(dumps)))
	l.m.backlogSize.Store(size)
	return dumps, nil
}

// loadAll loads dumps (oldest window first) with cfg.Parallel workers.
func (l *Loader) loadAll(ctx context.Context, dumps []Dump) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	ch := make(chan Dump)
	for range min(l.cfg.Parallel, len(dumps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range ch {
				err := l.load(ctx, d)
				l.mu.Lock()
				delete(l.busy, d.Path)
				if err != nil && ctx.Err() == nil {
					l.failed[d.Path] = time.Now().Add(time.Minute)
				} else {
					delete(l.failed, d.Path)
				}
				l.mu.Unlock()
				if err != nil && ctx.Err() == nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, d := range dumps {
		l.mu.Lock()
		if l.busy[d.Path] {
			l.mu.Unlock()
			continue
		}
		l.busy[d.Path] = true
		l.mu.Unlock()
		select {
		case ch <- d:
		case <-ctx.Done():
			l.mu.Lock()
			delete(l.busy, d.Path)
			l.mu.Unlock()
			break feed
		}
	}
	close(ch)
	wg.Wait()
	return errs
}

// dropEvery is how often Run drops expired partitions: with hourly raw
// partitions a row outlives the retention by at most an hour plus this.
const dropEvery = 5 * time.Minute

// dropExpired drops the partitions of raw tables whose whole span is older
// than Config.Retention, and those of aggregated tables older than
// Config.AggregateRetention (ClickHouse 18.16 has no TTL; with TTL it
// does the same sooner). Raw tables are partitioned by hour (YYYYMMDDHH;
// tables created by older loaders by day, YYYYMMDD), aggregated ones by
// month (YYYYMM).
func (l *Loader) dropExpired(ctx context.Context) {
	now := time.Now()
	for _, c := range l.shards {
		if l.cfg.Retention > 0 {
			for _, t := range l.schema.tables {
				l.dropOlder(ctx, c, t.spec.name, now.Add(-l.cfg.Retention), true)
			}
		}
		if l.cfg.AggregateRetention > 0 {
			for _, a := range AggregateNames() {
				l.dropOlder(ctx, c, a, now.Add(-l.cfg.AggregateRetention), false)
			}
		}
	}
}

// partitionEnd returns the end of the span of a partition ID: YYYYMMDDHH
// (an hour), YYYYMMDD (a day) or YYYYMM (a month), UTC.
func partitionEnd(id string) (time.Time, bool) {
	switch len(id) {
	case 10:
		t, err := time.Parse("2006010215", id)
		return t.Add(time.Hour), err == nil
	case 8:
		t, err := time.Parse("20060102", id)
		return t.AddDate(0, 0, 1), err == nil
	case 6:
		t, err := time.Parse("200601", id)
		return t.AddDate(0, 1, 0), err == nil
	}
	return time.Time{}, false
}

// dropOlder drops the partitions of table that end at or before cutoff.
// For a raw table a partition stays while the ledger has a batch of its day
// with an unknown outcome: recovery counts that batch's rows there.
func (l *Loader) dropOlder(ctx context.Context, c *Client, table string, cutoff time.Time, raw bool) {
	local := l.schema.localName(table)
	rows, err := c.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE active AND database = "+
		literal(l.cfg.Database)+" AND table = "+literal(local)+" ORDER BY partition_id")
	if err != nil {
		l.log.Warn("list partitions", "table", local, "err", err)
		return
	}
	for _, r := range rows {
		p := r[0]
		end, ok := partitionEnd(p)
		if !ok || end.After(cutoff) {
			continue
		}
		if raw {
			if open, err := l.unsettled(ctx, table, p[:8]); err != nil || open {
				continue
			}
		}
		if err := c.Exec(ctx, "ALTER TABLE "+l.schema.qualified(local)+" DROP PARTITION "+p); err != nil {
			l.log.Warn("drop expired partition", "table", local, "partition", p, "err", err)
			continue
		}
		l.m.droppedPartitions[table].Inc()
		l.log.Info("dropped expired partition", "table", local, "partition", p)
	}
}

// unsettled reports whether the ledger holds an intent without outcome for
// table on day (YYYYMMDD).
func (l *Loader) unsettled(ctx context.Context, table, day string) (bool, error) {
	d, err := time.Parse("20060102", day)
	if err != nil {
		return false, err
	}
	date := literal(d.Format("2006-01-02"))
	led := l.schema.qualified(ledgerTable)
	n, err := l.main.QueryValue(ctx, fmt.Sprintf(
		"SELECT count() FROM %s WHERE table = %s AND date = %s AND state = 'intent' AND batch NOT IN "+
			"(SELECT batch FROM %s WHERE table = %s AND date = %s AND state IN ('done', 'aborted'))",
		led, literal(table), date, led, literal(table), date))
	return n != "0", err
}

// Status writes the backlog, the last loads and the table sizes to w.
func (l *Loader) Status(ctx context.Context, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	dumps, bad, err := scanDumps(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("scan %s: %w", l.cfg.Dir, err)
	}
	type agg struct {
		files  int
		bytes  int64
		oldest time.Time
	}
	by := map[string]*agg{}
	for _, d := range dumps {
		a := by[d.Stream]
		if a == nil {
			a = &agg{oldest: d.Window}
			by[d.Stream] = a
		}
		a.files++
		a.bytes += d.Size
	}
	streams := make([]string, 0, len(by))
	for s := range by {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	fmt.Fprintf(tw, "backlog in %s: %d dumps\n", l.cfg.Dir, len(dumps))
	fmt.Fprintln(tw, "stream\tdumps\tbytes\toldest window")
	for _, s := range streams {
		a := by[s]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s, a.files, a.bytes, a.oldest.Format(time.RFC3339))
	}
	if len(bad) > 0 {
		fmt.Fprintf(tw, "misnamed dumps: %d\n", len(bad))
	}
	tw.Flush()
	caps, err := DetectCapabilities(ctx, l.main)
	if err != nil {
		fmt.Fprintf(w, "\nclickhouse %s: %v\n", l.main.URL(), err)
		return err
	}
	fmt.Fprintf(w, "\nclickhouse %s: %s\n", l.main.URL(), caps)
	rows, err := l.main.Query(ctx, "SELECT file, toString(at), detail FROM "+l.schema.qualified(ledgerTable)+
		" WHERE state = 'file' ORDER BY at DESC LIMIT 10")
	if err != nil {
		fmt.Fprintf(w, "ledger: %v\n", err)
		return err
	}
	fmt.Fprintln(tw, "\nlast loads:")
	fmt.Fprintln(tw, "file\tat\tsummary")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r[0], r[1], r[2])
	}
	tw.Flush()
	rows, err = l.main.Query(ctx, "SELECT table, sum(rows), sum(bytes) FROM system.parts WHERE active AND database = "+
		literal(l.cfg.Database)+" GROUP BY table ORDER BY table")
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "\ntables on "+l.main.URL()+":")
	fmt.Fprintln(tw, "table\trows\tbytes")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r[0], r[1], r[2])
	}
	return tw.Flush()
}
