package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
)

// runSpool is `bench spool`: the spool of issue #12 end to end, in one run.
//
//  1. Write rate. The same file, sent as fast as the sender can, is written
//     once by a Recording receiver (dumps) and once by an All receiver whose
//     only subreceiver is down (its queue lowered to 1 MiB, so almost
//     everything goes to the spool). The rate is the bytes of IPFIX files
//     (dumps, segments) over the time they grew, polled every 10 ms the same
//     way for both; the position files and a tail of templates written after
//     the stream do not count (until the seventh session they did: a spool
//     position rewritten half a second later halved the spool's rate).
//     Goal: spool ≥ 0.8 × recording.
//  2. Replay while live data flows. ipfix-gen streams at the live rate
//     (-live-records records/s) to an All receiver whose subreceiver is
//     down for -fill seconds; then the subreceiver (a counting sink in this
//     process) comes up while the stream goes on. The replay rate is what
//     the sink receives per second until the spool has drained. Goal: ≥ 2×
//     the live rate.
//
// Both daemons run the real binary with the receiver loop on CPU 0; the
// sender on CPU 1.
func runSpool(args []string) error {
	fs := flag.NewFlagSet("bench spool", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory holding ipfix-balancer and ipfix-gen")
	messages := fs.Int64("messages", 1_000_000, "write rate: messages sent to each path (bounded by -seconds)")
	seconds := fs.Float64("seconds", 20, "write rate: time bound of the sender")
	live := fs.Float64("live-records", 50_000, "replay: records/s of the live stream")
	fill := fs.Duration("fill", 15*time.Second, "replay: how long the subreceiver is down")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	tmp, cleanup, err := workDir("ipfix-bench-spool-", *keep)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := &harness{bin: binDir, tmp: tmp, messages: *messages, seconds: *seconds}
	scenarios = []scenario{{Name: "spool", Size: 1400}}
	if err := h.generate(ctx); err != nil {
		return err
	}
	file := h.files[1400]
	records, err := countRecords(ctx, h, file)
	if err != nil {
		return err
	}
	rep := spoolReport{Commit: gitCommit(), File: file, Records: records}
	if rep.Recording, err = h.writeRate(ctx, "recording", file); err != nil {
		return err
	}
	if rep.Spool, err = h.writeRate(ctx, "spool", file); err != nil {
		return err
	}
	if rep.Recording.BytesPerSecond > 0 {
		rep.WriteRatio = rep.Spool.BytesPerSecond / rep.Recording.BytesPerSecond
	}
	liveMsgs := *live * float64(file.Messages) / float64(records)
	if rep.Replay, err = h.replayRate(ctx, file, liveMsgs, *fill); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(js))
	fmt.Printf("\nwrite: spool %.1f MB/s, recording %.1f MB/s: ratio %.2f (goal ≥ 0.8)\n",
		rep.Spool.BytesPerSecond/1e6, rep.Recording.BytesPerSecond/1e6, rep.WriteRatio)
	fmt.Printf("replay: %.0f data msg/s at the sink while the live stream sent %.0f msg/s: %.2f× (goal ≥ 2); backlog of %d messages drained in %.1f s\n",
		rep.Replay.OutRate, rep.Replay.LiveRate, rep.Replay.Ratio, rep.Replay.Backlog, rep.Replay.DrainSeconds)
	return nil
}

type spoolReport struct {
	Commit     string       `json:"commit"`
	File       *replayFile  `json:"file"`
	Records    int64        `json:"records"`
	Recording  writeResult  `json:"recording"`
	Spool      writeResult  `json:"spool"`
	WriteRatio float64      `json:"write_ratio"`
	Replay     replayResult `json:"replay"`
}

type writeResult struct {
	Bytes          int64            `json:"bytes"`
	Seconds        float64          `json:"seconds"`
	BytesPerSecond float64          `json:"bytes_per_second"`
	SentMessages   int64            `json:"sent_messages"`
	Drops          map[string]int64 `json:"drops,omitempty"`
}

type replayResult struct {
	LiveRate     float64 `json:"live_msgs_per_s"`
	Backlog      int64   `json:"backlog_messages"` // spooled when the sink came up
	DrainSeconds float64 `json:"drain_seconds"`
	SinkData     int64   `json:"sink_data_messages"` // during the drain
	OutRate      float64 `json:"out_msgs_per_s"`
	Ratio        float64 `json:"ratio"` // OutRate / LiveRate
}

// countRecords asks ipfix-gen how many records one pass of file holds.
func countRecords(ctx context.Context, h *harness, file *replayFile) (int64, error) {
	ps := &procs{}
	defer ps.killAll()
	out, _, err := ps.run(ctx, "ipfix-gen", "", filepath.Join(h.bin, "ipfix-gen"),
		"-replay", file.Path, "-loops", "1", "-progress-every", "0", "-out", filepath.Join(h.tmp, "count.ipfix"))
	if err != nil {
		return 0, err
	}
	_ = os.Remove(filepath.Join(h.tmp, "count.ipfix"))
	var s struct{ Records int64 }
	if err := json.Unmarshal(lastLine(out), &s); err != nil || s.Records == 0 {
		return 0, fmt.Errorf("ipfix-gen summary %q: %v", out, err)
	}
	return s.Records, nil
}

// spoolConfig is a daemon with one fullflow receiver: Recording into dir, or
// All to sub with its spool in dir.
func spoolConfig(listen, metricsAddr, dir, sub string) string {
	mode := fmt.Sprintf(`mode = "All"
subreceivers = [%q]
queue_bytes = 1048576
[receiver.spool]
dir = %q
max_bytes = 0
min_free_bytes = 0
`, sub, dir)
	if sub == "" {
		mode = fmt.Sprintf(`mode = "Recording"
[receiver.recording]
dir = %q
`, dir)
	}
	// The console on, as the default file has it.
	return daemonHead("spool", metricsAddr, true, listen) + mode
}

// startSpoolDaemon starts the daemon of spoolConfig and waits for /metrics.
func (h *harness) startSpoolDaemon(ctx context.Context, ps *procs, name, dir, sub string) (listen, metricsURL string, p *proc, err error) {
	if listen, err = freePort("tcp"); err != nil {
		return
	}
	maddr, err := freePort("tcp")
	if err != nil {
		return
	}
	metricsURL = "http://" + maddr + "/metrics"
	cfg := filepath.Join(h.tmp, name+".toml")
	if err = os.WriteFile(cfg, []byte(spoolConfig(listen, maddr, dir, sub)), 0o644); err != nil {
		return
	}
	if p, err = ps.start("ipfix-balancer", "", filepath.Join(h.bin, "ipfix-balancer"), "-config", cfg); err != nil {
		return
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, err = scrape(ctx, metricsURL, time.Second); err == nil {
			return
		}
		if p.exited() || time.Now().After(deadline) {
			err = p.fail(fmt.Errorf("no /metrics: %v", err))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dirBytes adds up the sizes of the IPFIX files under dir: dumps and spool
// segments, closed or being written; not a spool's position and lock files,
// which change after the data has been written.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(d.Name(), dump.Ext) {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// point is one poll of a directory's IPFIX bytes.
type point struct {
	t time.Time
	n int64
}

// writeSpan is the bytes written and the time they took, from the polls of a
// directory: from the first poll that found bytes to the first that found
// the final size, but for a tail too small to be part of the stream (a
// segment or dump opened after it with only its templates).
func writeSpan(pts []point) (bytes int64, seconds float64, err error) {
	first := 0
	for first < len(pts) && pts[first].n == 0 {
		first++
	}
	if first >= len(pts)-1 {
		return 0, 0, errors.New("nothing written")
	}
	final := pts[len(pts)-1].n
	end := first + 1
	for end < len(pts)-1 && pts[end].n < final-tailSlack {
		end++
	}
	a, b := pts[first], pts[end]
	return b.n - a.n, b.t.Sub(a.t).Seconds(), nil
}

// pollEvery is how often writeRate reads the directory's size: the write
// phase lasts well under a second, so a coarse poll is a coarse rate.
// tailSlack is the growth after the stream that does not count.
const (
	pollEvery = 10 * time.Millisecond
	tailSlack = 64 << 10
)

// writeRate sends file as fast as the sender can to a Recording receiver
// (kind "recording") or to an All receiver with its only subreceiver down
// (kind "spool"), and measures the bytes reaching the disk per second.
func (h *harness) writeRate(ctx context.Context, kind string, file *replayFile) (writeResult, error) {
	var res writeResult
	ps := &procs{}
	defer ps.killAll()
	dir := filepath.Join(h.tmp, kind)
	sub := ""
	if kind == "spool" {
		var err error
		if sub, err = freePort("tcp"); err != nil { // nobody listens there
			return res, err
		}
	}
	listen, metricsURL, daemon, err := h.startSpoolDaemon(ctx, ps, kind, dir, sub)
	if err != nil {
		return res, err
	}
	// Poll the directory: from the first byte to the last growth.
	stopPoll := make(chan struct{})
	polled := make(chan []point, 1)
	go func() {
		var pts []point
		last := int64(-1)
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for range 100 * 600 {
			select {
			case <-stopPoll:
				polled <- pts
				return
			case now := <-tick.C:
				if n := dirBytes(dir); n != last {
					pts = append(pts, point{now, n})
					last = n
				}
			}
		}
		polled <- pts
	}()
	loops := max(1, (h.messages+file.Messages-1)/file.Messages)
	out, _, err := ps.run(ctx, "ipfix-gen", loadCPU, filepath.Join(h.bin, "ipfix-gen"),
		"-replay", file.Path, "-loops", strconv.FormatInt(loops, 10), "-to", "tcp://"+listen,
		"-progress-every", "0", "-duration", time.Duration(h.seconds*float64(time.Second)).String())
	if err != nil {
		close(stopPoll)
		return res, err
	}
	var gen struct{ Messages int64 }
	if err := json.Unmarshal(lastLine(out), &gen); err != nil {
		close(stopPoll)
		return res, fmt.Errorf("ipfix-gen summary %q: %w", out, err)
	}
	res.SentMessages = gen.Messages
	// Until the directory has not grown for 2 s.
	quietSince, last := time.Now(), dirBytes(dir)
	for time.Since(quietSince) < 2*time.Second {
		time.Sleep(100 * time.Millisecond)
		if n := dirBytes(dir); n != last {
			quietSince, last = time.Now(), n
		}
	}
	close(stopPoll)
	pts := <-polled
	ss, err := scrape(ctx, metricsURL, 5*time.Second)
	if err != nil {
		return res, daemon.fail(err)
	}
	res.Drops = sumBy(ss, "ipfix_balancer_dropped_messages_total", "reason")
	for r, n := range sumBy(ss, "ipfix_balancer_spool_dropped_messages_total", "reason") {
		res.Drops["spool_"+r] += n
	}
	for r, n := range res.Drops {
		if n == 0 {
			delete(res.Drops, r)
		}
	}
	var err2 error
	if res.Bytes, res.Seconds, err2 = writeSpan(pts); err2 != nil {
		return res, fmt.Errorf("%s: %s: %w", kind, dir, err2)
	}
	res.BytesPerSecond = float64(res.Bytes) / res.Seconds
	fmt.Fprintf(os.Stderr, "bench: %s: %d bytes in %.2f s: %.1f MB/s, drops %v\n", kind, res.Bytes, res.Seconds, res.BytesPerSecond/1e6, res.Drops)
	return res, nil
}

// replayRate streams at liveMsgs messages/s to an All receiver whose
// subreceiver is down for fill, then brings it up and measures how fast the
// spool drains into it while the stream goes on.
func (h *harness) replayRate(ctx context.Context, file *replayFile, liveMsgs float64, fill time.Duration) (replayResult, error) {
	res := replayResult{LiveRate: liveMsgs}
	ps := &procs{}
	defer ps.killAll()
	subAddr, err := freePort("tcp")
	if err != nil {
		return res, err
	}
	listen, metricsURL, daemon, err := h.startSpoolDaemon(ctx, ps, "replay", filepath.Join(h.tmp, "replay"), subAddr)
	if err != nil {
		return res, err
	}
	// Long enough to fill, drain and go on: fill, then up to 4 fills.
	total := fill + 4*fill + 10*time.Second
	loops := max(1, int64(liveMsgs*total.Seconds())/file.Messages+1)
	gen, err := ps.start("ipfix-gen", loadCPU, filepath.Join(h.bin, "ipfix-gen"),
		"-replay", file.Path, "-loops", strconv.FormatInt(loops, 10), "-to", "tcp://"+listen,
		"-rate", strconv.FormatFloat(liveMsgs, 'f', 0, 64), "-duration", total.String(), "-progress-every", "0")
	if err != nil {
		return res, err
	}
	select {
	case <-time.After(fill):
	case <-ctx.Done():
		return res, context.Cause(ctx)
	}
	if gen.exited() {
		return res, gen.fail(errors.New("ipfix-gen ended early"))
	}
	ss, err := scrape(ctx, metricsURL, 5*time.Second)
	if err != nil {
		return res, daemon.fail(err)
	}
	spooled0 := sum(ss, "ipfix_balancer_spool_spooled_messages_total")
	replayed0 := sum(ss, "ipfix_balancer_spool_replayed_messages_total")
	res.Backlog = spooled0 - replayed0
	if res.Backlog == 0 {
		return res, errors.New("replay: the spool holds nothing after the fill")
	}
	ln, err := net.Listen("tcp", subAddr)
	if err != nil {
		return res, err
	}
	s := &sink{ln: ln}
	go s.serve()
	defer ln.Close()
	start := time.Now()
	deadline := start.Add(4 * fill)
	for {
		time.Sleep(50 * time.Millisecond)
		ss, err := scrape(ctx, metricsURL, 5*time.Second)
		if err != nil {
			return res, daemon.fail(err)
		}
		// Drained: everything spooled was replayed (or dropped). The
		// counters move with each message; the gauges only once a second.
		left := sum(ss, "ipfix_balancer_spool_spooled_messages_total") - sum(ss, "ipfix_balancer_spool_replayed_messages_total") -
			sum(ss, "ipfix_balancer_spool_dropped_messages_total")
		if left <= 0 {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("replay: the spool did not drain in %v (sink has %d data messages)", 4*fill, s.data.Load())
		}
	}
	res.DrainSeconds = time.Since(start).Seconds()
	st := s.stats()
	res.SinkData = st.Data
	if st.Errors > 0 {
		return res, fmt.Errorf("replay: the sink lost IPFIX framing %d times", st.Errors)
	}
	res.OutRate = float64(res.SinkData) / res.DrainSeconds
	res.Ratio = res.OutRate / res.LiveRate
	return res, nil
}
