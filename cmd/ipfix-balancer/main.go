// Command ipfix-balancer receives the IPFIX streams of DPIs and forwards them to
// collectors (RoundRobin or All) or records them into rotated dump files. See
// README.md for the operator's guide.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `usage:
  ipfix-balancer [-config FILE] [-check-config] [-print-config]
  ipfix-balancer convert-config FILE.env     print the TOML equivalent of a legacy .env
  ipfix-balancer -version

Without -config the embedded default configuration runs (three recording receivers
on 127.0.0.1). FILE may be a TOML file or a legacy .env file.

`)
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "convert-config" {
		return convertConfig(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ipfix-balancer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr, fs) }
	path := fs.String("config", "", "configuration file (TOML or legacy .env); default: the embedded one")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	print := fs.Bool("print-config", false, "print the effective configuration as TOML and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "ipfix-balancer", version)
		return 0
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "configuration ok: %d receivers\n", len(cfg.Receivers))
		return 0
	}
	if *print {
		out, err := cfg.TOML()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		_, _ = stdout.Write(out)
		return 0
	}
	log := newLogger(cfg.Log.Level, stderr)
	slog.SetDefault(log)
	if err := serve(cfg, log); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func convertConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: ipfix-balancer convert-config FILE.env")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	out, warnings, err := config.ConvertEnv(data, args[0])
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve runs every receiver until SIGINT or SIGTERM, then drains them.
func serve(cfg *config.Config, log *slog.Logger) error {
	// Each receiver's loop holds an OS thread; leave room for the rest.
	if n := len(cfg.Receivers) + 2; runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	metrics.NewGauge(`ipfix_balancer_build_info{version="`+version+`",goversion="`+runtime.Version()+`"}`, func() float64 { return 1 })
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		srv := &http.Server{Handler: metricsHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("metrics listening", "listen", ln.Addr().String())
	}

	opts := balancer.Options{Logger: log, StatsEvery: cfg.StatsEvery, ShutdownTimeout: cfg.ShutdownTimeout}
	var receivers []*balancer.Receiver
	for _, rc := range cfg.Receivers {
		r, err := balancer.New(rc, opts)
		if err != nil {
			return err
		}
		receivers = append(receivers, r)
	}
	errs := make(chan error, len(receivers))
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, r := range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(runCtx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	log.Info("ipfix-balancer started", "version", version, "receivers", len(receivers))
	<-runCtx.Done()
	log.Info("stopping: draining queues", "timeout", cfg.ShutdownTimeout)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	for _, r := range receivers {
		_ = r.Close()
	}
	return errors.Join(all...)
}

func metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		metrics.WritePrometheus(w, true)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ipfix-balancer", version, strings.Repeat("-", 3), "metrics at /metrics")
	})
	return mux
}
