// Command ipfix-loader loads closed dump files of the balancer's Recording
// mode into ClickHouse, exactly once (see package loader).
//
//	ipfix-loader [-config FILE] [-dir DUMPDIR] [-clickhouse http://HOST:8123] [-database NAME] [-once]
//	ipfix-loader [flags] migrate   create or update the database and tables, then exit
//	ipfix-loader [flags] status    print the backlog, the last loads and the table sizes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/loader"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ipfix-loader:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := ""
	if len(args) > 0 && (args[0] == "migrate" || args[0] == "status") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("ipfix-loader", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipfix-loader [-config FILE] [-dir DUMPDIR] [-clickhouse http://HOST:8123] [-database NAME] [-once] [migrate|status]")
		fs.PrintDefaults()
	}
	var (
		configFile = fs.String("config", "", "TOML configuration file (its [loader] section); flags override it")
		dir        = fs.String("dir", "", "dump directory (<dir>/<stream>/<stream>_<dpi>_<time>.ipfix)")
		chURL      = fs.String("clickhouse", "", "ClickHouse HTTP URL (default http://127.0.0.1:8123)")
		database   = fs.String("database", "", "database (default ipfix)")
		once       = fs.Bool("once", false, "load the dumps that are there, then exit")
		parallel   = fs.Int("parallel", 0, "dumps loaded at once")
		batchRows  = fs.Int("batch-rows", 0, "rows per insert")
		afterLoad  = fs.String("after-load", "", "move (to loaded/) or delete")
		cluster    = fs.String("cluster", "", "ClickHouse cluster to shard over")
		shards     = fs.String("shards", "", "comma-separated HTTP URLs of the cluster's shards, in shard order")
		metricsAt  = fs.String("metrics", "", "host:port to serve /metrics on (default: none)")
		retention  = fs.String("retention", "", "retention of the raw tables, e.g. 24h; 0 keeps them forever")
		settle     = fs.Duration("settle", 0, "wait before counting a batch of unknown outcome at recovery (default 2s)")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error")
		showVer    = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVer {
		fmt.Println("ipfix-loader", version)
		return nil
	}
	if rest := fs.Args(); len(rest) > 0 {
		if cmd != "" || len(rest) > 1 || (rest[0] != "migrate" && rest[0] != "status") {
			return fmt.Errorf("unexpected arguments %q", rest)
		}
		cmd = rest[0]
	}

	cfg := loader.Default()
	level := slog.LevelInfo
	if *configFile != "" {
		c, err := config.Load(*configFile)
		if err != nil {
			return err
		}
		cfg = fromConfig(c.Loader)
		level = c.Log.SlogLevel()
		if *metricsAt == "" {
			*metricsAt = c.Loader.MetricsListen
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Dir, *dir)
	set(&cfg.ClickHouse, *chURL)
	set(&cfg.Database, *database)
	set(&cfg.AfterLoad, *afterLoad)
	set(&cfg.Cluster, *cluster)
	if *shards != "" {
		cfg.Shards = strings.Split(*shards, ",")
	}
	if *parallel != 0 {
		cfg.Parallel = *parallel
	}
	if *batchRows != 0 {
		cfg.BatchRows = *batchRows
	}
	if *retention != "" {
		d, err := time.ParseDuration(*retention)
		if err != nil {
			return fmt.Errorf("-retention: %w", err)
		}
		cfg.Retention = d
	}
	if *settle != 0 {
		cfg.Settle = *settle
	}
	switch *logLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	case "info":
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	l, err := loader.New(cfg, log)
	if err != nil {
		return err
	}
	defer l.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "migrate":
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return l.Migrate(mctx)
	case "status":
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return l.Status(sctx, os.Stdout)
	}

	if *metricsAt != "" {
		metrics.RegisterSet(l.Metrics())
		defer metrics.UnregisterSet(l.Metrics(), true)
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			metrics.WritePrometheus(w, true)
		})
		srv := &http.Server{Addr: *metricsAt, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener", "addr", *metricsAt, "err", err)
			}
		}()
		defer srv.Close()
	}
	if *once {
		return l.RunOnce(ctx)
	}
	return l.Run(ctx)
}

// fromConfig maps the [loader] section of the shared TOML file onto the
// loader's own configuration; zero values keep the loader's defaults.
func fromConfig(c config.Loader) loader.Config {
	cfg := loader.Default()
	if c.Dir != "" {
		cfg.Dir = c.Dir
	}
	if c.ClickHouse != "" {
		cfg.ClickHouse = c.ClickHouse
	}
	if c.Database != "" {
		cfg.Database = c.Database
	}
	cfg.User, cfg.Password = c.User, c.Password
	if c.Parallel != 0 {
		cfg.Parallel = c.Parallel
	}
	if c.AfterLoad != "" {
		cfg.AfterLoad = c.AfterLoad
	}
	cfg.Retention = c.Retention
	if c.BatchRows != 0 {
		cfg.BatchRows = c.BatchRows
	}
	if c.PollEvery != 0 {
		cfg.PollEvery = c.PollEvery
	}
	cfg.Cluster = c.Cluster
	if c.ShardingKey != "" {
		cfg.ShardingKey = c.ShardingKey
	}
	if len(c.Shards) > 0 {
		cfg.Shards = c.Shards
	}
	// Ranges are checked by config (0..4, 0..2); the conversion is exact.
	cfg.Dictionaries = c.Dictionaries
	cfg.Policy = dict.Policy{Direction: dict.Mode(c.TrafficDirDefMode), Filter: dict.Mode(c.SubscriberFilterMode),
		Exclude: dict.Mode(c.SubscriberExcludeMode)}
	cfg.Login = dict.LoginPolicy{Replace: dict.LoginMode(c.ReplaceLoginWithVChannel), UseDict: c.UseDicWhenReplacingLogin}
	return cfg
}
