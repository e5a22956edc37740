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
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/console"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `usage:
  ipfix-balancer [-config FILE] [-control-socket PATH] [-check-config] [-print-config]
  ipfix-balancer convert-config FILE.env     print the TOML equivalent of a legacy .env
  ipfix-balancer help | -version

Without -config the embedded default configuration runs (three recording receivers
on 127.0.0.1, dumps into ./dump). FILE may be a TOML file or a legacy .env file.

`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "convert-config":
			return convertConfig(args[1:], stdout, stderr)
		case "help":
			usage(stdout, newFlagSet(stderr))
			return 0
		}
	}
	fs := newFlagSet(stderr)
	path := fs.String("config", "", "configuration file (TOML or legacy .env); default: the embedded one")
	controlSocket := fs.String("control-socket", "", "unix socket of the restart hand-over, instead of [balancer] control_socket (make run: one of its own)")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	print := fs.Bool("print-config", false, "print the effective configuration as TOML and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return 0
		}
		usage(stderr, fs) // the flag package has said what is wrong
		return 2
	}
	if fs.NArg() > 0 {
		// "ipfix-balancer balancer.toml" (a forgotten -config) or a misspelt
		// subcommand must not start the default daemon.
		fmt.Fprintf(stderr, "ipfix-balancer: unexpected argument %q (a configuration file goes after -config; subcommands: convert-config, help)\n", fs.Arg(0))
		usage(stderr, fs)
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "ipfix-balancer", version)
		return 0
	}
	// Legacy .env import warnings are logged while loading.
	slog.SetDefault(newLogger("info", stderr))
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if flagSet(fs, "control-socket") {
		cfg.ControlSocket = *controlSocket
		if err := cfg.Validate(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if *check {
		for _, w := range cfg.Warnings() {
			fmt.Fprintln(stderr, "warning:", w)
		}
		for _, l := range cfg.LocalRecorders() {
			fmt.Fprintln(stdout, l)
		}
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
	if err := serve(cfg, *path, log); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

// newFlagSet returns a flag set that reports parse errors on stderr and
// leaves the usage to run.
func newFlagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ipfix-balancer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
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

// serve runs the balancer until SIGINT or SIGTERM (drain, exit 0), reloads the
// configuration on SIGHUP, and on SIGUSR2 starts its successor (the binary at the
// same path, possibly upgraded), which takes the sockets over; this process then
// drains and exits.
func serve(cfg *config.Config, path string, log *slog.Logger) error {
	// Each receiver's loop holds an OS thread; leave room for the rest.
	if n := len(cfg.Receivers) + 2; runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Before /metrics answers: a SIGUSR2 sent as soon as it does must not
	// meet Go's default action (exit).
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(signals)

	// The console's logs page shows what the daemon logs.
	logs := console.NewLogRing(2000)
	log = slog.New(logs.Handler(log.Handler()))
	slog.SetDefault(log)
	metrics.NewGauge(`ipfix_balancer_build_info{version="`+version+`",goversion="`+runtime.Version()+`"}`, func() float64 { return 1 })
	opts := balancer.Options{Logger: log, StatsEvery: cfg.StatsEvery, ShutdownTimeout: cfg.ShutdownTimeout}
	b, err := balancer.NewBalancer(cfg, opts)
	if err != nil {
		return err
	}
	if cfg.Metrics.Listen != "" {
		ln, err := listenMetrics(cfg.ControlSocket, cfg.Metrics.Listen, log)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		var pages http.Handler
		if cfg.Console.Enabled {
			con, err := console.New(b, console.Options{ConfigPath: path, Reload: func() error { return reloadFile(b, path) },
				Logs: logs, Logger: log, Loopback: console.Loopback(ln.Addr()), Version: version})
			if err != nil {
				return err
			}
			go func() { _ = con.Run(ctx) }()
			pages = con.Handler()
		}
		srv := &http.Server{Handler: metricsHandler(pages), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		b.ShareListener("metrics", ln)
		go func() {
			// The successor serves /metrics on the same socket from now on.
			select {
			case <-b.HandedOver():
				// Requests being answered finish; idle connections close.
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			case <-ctx.Done():
			}
		}()
	}

	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	notified := false
	successor := 0 // PID of the process we started on SIGUSR2
	// successorEnded reports the exit of a successor; before it took over, that
	// is a failed restart and we serve on.
	successorEnded := make(chan error, 1)
	// restartPending: a SIGUSR2 came before this process served; the restart
	// starts once it does.
	restartPending := false
	restart := func() {
		if successor != 0 {
			log.Warn("restart already under way, signal ignored", "pid", successor)
			return
		}
		pid, err := startSuccessor(log, successorEnded)
		if err != nil {
			b.RestartFailed(fmt.Errorf("cannot start the new process: %w", err))
			return
		}
		successor = pid
	}
	ready := time.NewTicker(10 * time.Millisecond)
	defer ready.Stop()
	log.Info("ipfix-balancer starting", "version", version, "receivers", len(cfg.Receivers), "pid", os.Getpid())
	for {
		select {
		case err := <-done:
			if successor != 0 {
				// Systemd before 250 ignores ExitType=cgroup: if we exited before the
				// successor's own MAINPID reached it, it would stop the unit. As the main
				// process we may always name our successor.
				sdNotify(fmt.Sprintf("MAINPID=%d", successor))
			}
			return err
		case err := <-successorEnded:
			successor = 0
			b.RestartFailed(err)
		case <-ready.C:
			if !notified && b.Running() {
				notified = true
				// Type=notify units: this process is the service now (after a
				// hand-over too, when our parent was the main PID).
				sdNotify(fmt.Sprintf("READY=1\nMAINPID=%d", os.Getpid()))
				ready.Stop()
				if restartPending {
					restartPending = false
					log.Info("this process serves: starting the restart requested before")
					restart()
				}
			}
		case sig := <-signals:
			switch sig {
			case syscall.SIGHUP:
				if path == "" {
					log.Warn("reload requested but running the embedded default configuration: nothing to reload")
					continue
				}
				sdNotify("RELOADING=1")
				_ = reloadFile(b, path)
				sdNotify("READY=1")
			case syscall.SIGUSR2:
				if !notified {
					// Our control socket does not listen yet: a successor would
					// find no one to take over from and fail to bind. The
					// restart waits until this process serves.
					if !restartPending {
						log.Info("restart requested before this process serves: it starts once this process serves")
					}
					restartPending = true
					continue
				}
				restart()
			}
		}
	}
}

// reloadFile applies the configuration file at path (SIGHUP and the console's
// editor): all or nothing, a refused one is logged and counted.
func reloadFile(b *balancer.Balancer, path string) error {
	next, err := config.Load(path)
	if err != nil {
		b.ReloadFailed(err)
		return err
	}
	return b.Reload(next)
}

// startSuccessor runs this binary again with the same arguments; the child takes
// our sockets over through the control socket. Its exit, if we are still there to
// see it, is sent on ended.
func startSuccessor(log *slog.Logger, ended chan<- error) (int, error) {
	exe, err := os.Executable() // the path, even if the file was replaced by an upgrade
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: false}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	log.Info("restart: new process started, handing over", "pid", pid, "exe", exe)
	go func() {
		err := cmd.Wait()
		if err == nil {
			err = errors.New("exit status 0")
		}
		ended <- fmt.Errorf("new process %d ended: %w", pid, err)
	}()
	return pid, nil
}

// sdNotify tells systemd about our state when it runs us (Type=notify).
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// listenMetrics takes the metrics listener of the process we replace, if one runs
// on our control socket, or binds addr.
func listenMetrics(controlSocket, addr string, log *slog.Logger) (net.Listener, error) {
	ln, err := balancer.InheritListener(controlSocket, "metrics", addr)
	if err != nil {
		log.Warn("cannot take the metrics listener over from the running process, binding it", "control_socket", controlSocket, "err", err)
	}
	if ln != nil {
		log.Info("metrics listening (taken over)", "listen", ln.Addr().String())
		return ln, nil
	}
	if ln, err = net.Listen("tcp", addr); err != nil {
		return nil, err
	}
	log.Info("metrics listening", "listen", ln.Addr().String())
	return ln, nil
}

// metricsHandler serves /metrics and, when pages is not nil, the console at /.
func metricsHandler(pages http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		metrics.WritePrometheus(w, true)
	})
	if pages != nil {
		mux.Handle("/", pages)
		return mux
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ipfix-balancer", version, strings.Repeat("-", 3), "metrics at /metrics")
	})
	return mux
}
