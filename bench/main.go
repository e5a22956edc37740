// Command bench is the end-to-end load harness of ipfix-balancer: it drives
// the real daemon over loopback with ipfix-gen -replay and fast sinks, and
// reports messages/s, Gbit/s, drops, CPU and peak RSS per scenario, next to a
// minimal relay (read → write, no IPFIX awareness) measured in the same run.
//
//	go build -o bin/ ./cmd/...
//	go run ./bench -bin bin                        # every scenario, 3 repetitions
//	go run ./bench -bin bin -scenario tcp-rr-1400 -reps 1 -messages 2000000
//	go run ./bench -bin bin -json > results.json
//
// Placement on a 2-core machine: the balancer's receiver loop is pinned to
// CPU 0 (cpu = 0 in its config), the relay's thread likewise; the sender and
// the sinks run together on CPU 1 (taskset), so the daemon's CPU is its own.
// Sinks and relay are this same binary run as children (`bench sink`,
// `bench relay`). Every run is bounded by message count and by time, and
// every child is killed at the end of each run, on error too.
//
// Numbers and the exact commands that produced them live in bench/RESULTS.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

func main() {
	var err error
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sink":
			err = runSink(os.Args[2:])
		case "relay":
			err = runRelay(os.Args[2:])
		case "spool":
			err = runSpool(os.Args[2:])
		default:
			err = runHarness(os.Args[1:])
		}
	} else {
		err = runHarness(nil)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runHarness(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory holding ipfix-balancer and ipfix-gen (go build -o bin/ ./cmd/...)")
	which := fs.String("scenario", "all", "scenario name, comma-separated names, or all")
	messages := fs.Int64("messages", 4_000_000, "messages per 1400 B scenario (16 KiB scenarios send the same bytes)")
	seconds := fs.Float64("seconds", 15, "time bound of the sender in each run")
	reps := fs.Int("reps", 3, "repetitions of each scenario (the table shows medians)")
	udpRate := fs.Float64("udp-rate", 0, "UDP sender rate in messages/s (0 = as fast as it can)")
	asJSON := fs.Bool("json", false, "print JSON instead of the Markdown table")
	jsonFile := fs.String("json-file", "", "also write the JSON report (every run) to this file")
	perfDir := fs.String("perf", "", "record `perf record -g` of the daemon into this directory (first repetition)")
	keep := fs.Bool("keep", false, "keep the temporary directory (replay files, configs)")
	verbose := fs.Bool("v", false, "copy the children's stderr to ours")
	waitIdle := fs.Float64("wait-idle", 0, "before each run, wait up to 2 minutes for the machine to be this idle (0..1; shared machines)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage:
  bench [-bin DIR] [-scenario NAME,...|all] [-messages N] [-seconds S] [-reps R] [-json]
  bench sink -n 2 [-raw]             (child: counting sink)
  bench relay -to A -to B [-cpu 0] [-all]   (child: minimal relay; -all replicates)
  bench spool [-bin DIR] [-messages N] [-live-records R] [-fill D]   (spool write and replay rates, #12)

scenarios: %s

`, strings.Join(names(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var run []scenario
	for _, sc := range scenarios {
		if *which == "all" || slices.Contains(strings.Split(*which, ","), sc.Name) {
			run = append(run, sc)
		}
	}
	if len(run) == 0 {
		return fmt.Errorf("-scenario %q: want one of %s or all", *which, strings.Join(names(), ", "))
	}
	if *messages <= 0 || *seconds <= 0 || *reps <= 0 {
		return errors.New("-messages, -seconds and -reps must be positive")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	for _, b := range []string{"ipfix-balancer", "ipfix-gen"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("%w (build them: go build -o %s/ ./cmd/...)", err, *bin)
		}
	}
	if *perfDir != "" {
		if err := os.MkdirAll(*perfDir, 0o755); err != nil {
			return err
		}
	}
	tmp, cleanup, err := workDir("ipfix-bench-", *keep)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := &harness{bin: binDir, self: self, tmp: tmp, messages: *messages, seconds: *seconds,
		udpRate: *udpRate, perfDir: *perfDir, verbose: *verbose, waitIdle: *waitIdle}
	// The commit of the tree when the run starts (the binaries in -bin should
	// be built from it): other commits may land while it runs.
	commit := gitCommit()
	if err := h.generate(ctx); err != nil {
		return err
	}
	var results []result
	for rep := range *reps {
		for _, sc := range run {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			r := h.run(ctx, sc, rep)
			results = append(results, r)
			if r.Err != "" {
				h.logf("%s #%d: FAILED: %s", sc.Name, rep+1, r.Err)
			} else {
				h.logf("%s #%d: in %.0f msg/s, out %.0f msg/s (%.2f Gbit/s), drops %d, cpu %.0f%% (pinned thread %.0f%%), rss %.0f MiB, idle before %.0f%%, other load %.0f%%%s",
					sc.Name, rep+1, r.InRate, r.OutRate, r.OutGbps, r.Drops+r.KernelDrops, r.CPU, r.LoopCPU,
					float64(r.PeakRSS)/(1<<20), 100*r.IdleBefore, r.OtherCPU, completeNote(r))
			}
		}
	}
	rep := newReport(run, results, h, args)
	rep.Commit = commit
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if *jsonFile != "" {
		if err := os.WriteFile(*jsonFile, js, 0o644); err != nil {
			return err
		}
	}
	if *asJSON {
		_, err := os.Stdout.Write(js)
		return err
	}
	rep.markdown(os.Stdout)
	return nil
}

func names() []string {
	var n []string
	for _, sc := range scenarios {
		n = append(n, sc.Name)
	}
	return n
}

func completeNote(r result) string {
	if r.Complete {
		return ""
	}
	return " (INCOMPLETE: not every message accounted for)"
}

// workDir makes the run's temporary directory; cleanup removes it unless
// keep (then its path is printed).
func workDir(prefix string, keep bool) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "bench: keeping", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
