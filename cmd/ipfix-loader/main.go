// Command ipfix-loader loads closed dump files of the balancer's Recording
// mode into ClickHouse, exactly once (see package loader).
//
//	ipfix-loader [-config FILE] [-dir DUMPDIR] [-clickhouse http://HOST:8123] [-database NAME] [-once]
//	ipfix-loader [flags] migrate   create or update the database and tables, then exit
//	ipfix-loader [flags] status    print the backlog, the last loads and the table sizes
//	ipfix-loader convert-config FILE.env   print the TOML equivalent of the legacy collector's .env
//
// -config takes a TOML file or the legacy collector's .env
// (/var/qoestor/backend/.env) as it is: its receivers are the balancer's,
// its TRAFFIC_DIR_DEF_MODE, SUBSCRIBER_*, ULR_* and NAT_* settings the
// loader's (config.ParseEnv).
//
// Without -config the [loader] section of the embedded default configuration
// applies (dumps in ./dump, where `make run` records; ClickHouse at
// http://127.0.0.1:8123; /metrics on 127.0.0.1:9741). With -once, a ClickHouse
// that stays unreachable for -retry-for (20s) ends the run with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
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
)

var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			// The flag package has printed what is wrong and the usage.
			if ue.err != nil {
				fmt.Fprintln(os.Stderr, "ipfix-loader:", ue.err)
			}
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "ipfix-loader:", err)
		os.Exit(1)
	}
}

// usageError is a command line that is not one: exit status 2, as the flag
// package and the other binaries do.
type usageError struct{ err error }

func (e usageError) Error() string {
	if e.err == nil {
		return "bad usage"
	}
	return e.err.Error()
}

// setup is the parsed command line.
type setup struct {
	cmd     string // "", "migrate" or "status"
	cfg     config.Loader
	opts    loader.Options // without Log
	metrics string         // host:port of /metrics; "" = none
	once    bool
	level   slog.Level
	version bool
}

// configure parses the command line: flags override the [loader] section of
// -config, or of the embedded default configuration (config/default.toml)
// without -config, so that the defaults are the ones the README shows.
func configure(args []string) (*setup, error) {
	s := &setup{level: slog.LevelInfo}
	fs := flag.NewFlagSet("ipfix-loader", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipfix-loader [-config FILE] [-dir DUMPDIR] [-clickhouse http://HOST:8123] [-database NAME] [-once] [migrate|status|help]")
		fs.PrintDefaults()
	}
	if len(args) > 0 {
		switch args[0] {
		case "migrate", "status":
			s.cmd, args = args[0], args[1:]
		case "help":
			fs.SetOutput(os.Stdout)
			fs.Usage()
			return nil, flag.ErrHelp
		}
	}
	def := config.Default().Loader // for the usage: default.toml is where the defaults are
	var (
		configFile = fs.String("config", "", "TOML configuration file (its [loader] section) or the legacy collector's .env; flags override it; default: the embedded one (make run's)")
		dir        = fs.String("dir", "", "dump directory (default: [loader] dir, "+def.Dir+" without -config)")
		chURL      = fs.String("clickhouse", "", "ClickHouse HTTP URL (default: [loader] clickhouse, "+def.ClickHouse+" without -config)")
		database   = fs.String("database", "", "database (default: [loader] database, "+def.Database+" without -config)")
		once       = fs.Bool("once", false, "load the dumps that are there, then exit")
		parallel   = fs.Int("parallel", 0, "dumps loaded at once")
		batchRows  = fs.Int("batch-rows", 0, "rows per insert")
		afterLoad  = fs.String("after-load", "", "move (to loaded/) or delete")
		cluster    = fs.String("cluster", "", "ClickHouse cluster to shard over")
		shards     = fs.String("shards", "", "comma-separated HTTP URLs of the cluster's shards, in shard order")
		metricsAt  = fs.String("metrics", "", "host:port to serve /metrics on, \"\" for none (default: [loader] metrics_listen, "+def.MetricsListen+" without -config)")
		retryFor   = fs.Duration("retry-for", 20*time.Second, "with -once: give up (exit 1) when ClickHouse stays unreachable this long; 0 retries forever")
		retention  = fs.String("retention", "", "retention of the raw tables, e.g. 24h; 0 keeps them forever")
		settle     = fs.Duration("settle", loader.DefaultSettle, "wait before counting a batch of unknown outcome at recovery")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error")
		showVer    = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{}
	}
	if *showVer {
		s.version = true
		return s, nil
	}
	if rest := fs.Args(); len(rest) > 0 {
		if s.cmd != "" || len(rest) > 1 || (rest[0] != "migrate" && rest[0] != "status") {
			stray := rest[0]
			if s.cmd == "" && (rest[0] == "migrate" || rest[0] == "status") {
				stray = rest[1]
			}
			fs.Usage()
			return nil, usageError{fmt.Errorf("unexpected argument %q (a configuration file goes after -config; subcommands: migrate, status, help)", stray)}
		}
		s.cmd = rest[0]
	}
	s.once = *once

	// One definition of the defaults: the embedded configuration's [loader].
	c := config.Default()
	if *configFile != "" {
		var err error
		if c, err = config.Load(*configFile); err != nil {
			return nil, err
		}
	}
	cfg := c.Loader
	s.level = c.Log.SlogLevel()
	if !flagSet(fs, "metrics") {
		*metricsAt = c.Loader.MetricsListen
	}
	if s.once {
		s.opts.GiveUpAfter = *retryFor
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
			return nil, fmt.Errorf("-retention: %w", err)
		}
		cfg.Retention = d
	}
	s.opts.Settle = *settle
	if *logLevel != "" {
		l := config.Log{Level: *logLevel}
		if err := l.Check(); err != nil {
			return nil, fmt.Errorf("-log-level %w", err)
		}
		s.level = l.SlogLevel()
	}
	s.cfg, s.metrics = cfg, *metricsAt
	return s, nil
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "convert-config" {
		return convertConfig(args[1:], os.Stdout, os.Stderr)
	}
	s, err := configure(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if s.version {
		fmt.Println("ipfix-loader", version)
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: s.level}))
	slog.SetDefault(log)
	if s.cmd == "" {
		// The lock file lives in the dump directory: without this check a
		// loader run before anything was recorded would only say that the
		// lock file could not be created.
		if _, err := os.Stat(s.cfg.Dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dump directory %q does not exist: nothing recorded yet (make run records into ./dump), or set -dir or [loader] dir", s.cfg.Dir)
		}
	}

	opts := s.opts
	opts.Log = log
	l, err := loader.New(s.cfg, opts)
	if err != nil {
		return err
	}
	defer l.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch s.cmd {
	case "migrate":
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return l.Migrate(mctx)
	case "status":
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return l.Status(sctx, os.Stdout)
	}

	if s.metrics != "" {
		metrics.RegisterSet(l.Metrics())
		defer metrics.UnregisterSet(l.Metrics(), true)
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			metrics.WritePrometheus(w, true)
		})
		srv := &http.Server{Addr: s.metrics, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener", "addr", s.metrics, "err", err)
			}
		}()
		defer srv.Close()
	}
	if s.once {
		return l.RunOnce(ctx)
	}
	return l.Run(ctx)
}

// convertConfig prints the TOML equivalent of a legacy .env: one file for
// both binaries, the loader reading its [loader] section. Warnings (settings
// ignored) go to stderr.
func convertConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usageError{errors.New("usage: ipfix-loader convert-config FILE.env")}
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	out, warnings, err := config.ConvertEnv(data, args[0])
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
