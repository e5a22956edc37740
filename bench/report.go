package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// summary is the median over the successful runs of one scenario.
type summary struct {
	Scenario scenario `json:"scenario"`
	Runs     int      `json:"runs"`
	Failed   int      `json:"failed"`
	Errors   []string `json:"errors,omitempty"`
	// Medians.
	InRate  float64 `json:"in_msgs_per_s"`
	OutRate float64 `json:"out_msgs_per_s"`
	InGbps  float64 `json:"in_gbit_per_s"`
	OutGbps float64 `json:"out_gbit_per_s"`
	CPU     float64 `json:"cpu_percent"`
	LoopCPU float64 `json:"loop_cpu_percent"`
	UserCPU float64 `json:"user_cpu_percent"`
	SysCPU  float64 `json:"sys_cpu_percent"`
	CPUPer  float64 `json:"cpu_ns_per_in_message"`
	PeakRSS float64 `json:"peak_rss_bytes"`
	Sender  float64 `json:"sender_msgs_per_s"`
	Other   float64 `json:"other_cpu_percent"` // interference by other processes
	Load    float64 `json:"load_cpu_percent"`  // sender + sinks
	// Spread of the in rate, and the worst drops over all runs.
	MinIn       float64 `json:"min_in_msgs_per_s"`
	MaxIn       float64 `json:"max_in_msgs_per_s"`
	MaxDrops    int64   `json:"max_drops"`
	MaxKernel   int64   `json:"max_udp_kernel_drops"`
	Incomplete  int     `json:"incomplete_runs"`
	DropReasons []string
}

type target struct {
	What     string  `json:"what"`
	Goal     string  `json:"goal"`
	Measured string  `json:"measured"`
	Met      bool    `json:"met"`
	Value    float64 `json:"value"`
}

type report struct {
	Date      string             `json:"date"`
	Commit    string             `json:"commit"`
	CPU       string             `json:"cpu"`
	GoVersion string             `json:"go_version"`
	Command   string             `json:"command"`
	Files     []*replayFile      `json:"files"`
	Summaries []summary          `json:"summaries"`
	Targets   []target           `json:"targets"`
	Ratios    map[string]float64 `json:"ratio_to_relay"`
	Runs      []result           `json:"runs"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarise(sc scenario, rs []result) summary {
	s := summary{Scenario: sc}
	var in, out, ig, og, cpu, loop, ucpu, scpu, per, rss, snd, other, load []float64
	reasons := map[string]bool{}
	for _, r := range rs {
		if r.Scenario != sc.Name {
			continue
		}
		if r.Err != "" {
			s.Failed++
			s.Errors = append(s.Errors, r.Err)
			continue
		}
		s.Runs++
		in = append(in, r.InRate)
		out = append(out, r.OutRate)
		ig = append(ig, r.InGbps)
		og = append(og, r.OutGbps)
		cpu = append(cpu, r.CPU)
		loop = append(loop, r.LoopCPU)
		ucpu = append(ucpu, r.UserCPU)
		scpu = append(scpu, r.SysCPU)
		per = append(per, r.CPUPerIn)
		rss = append(rss, float64(r.PeakRSS))
		snd = append(snd, r.SenderRate)
		other = append(other, r.OtherCPU)
		load = append(load, r.LoadCPU)
		s.MaxDrops = max(s.MaxDrops, r.Drops)
		s.MaxKernel = max(s.MaxKernel, r.KernelDrops)
		if !r.Complete {
			s.Incomplete++
		}
		for k := range r.DropsByReason {
			reasons[k] = true
		}
	}
	s.InRate, s.OutRate, s.InGbps, s.OutGbps = median(in), median(out), median(ig), median(og)
	s.CPU, s.UserCPU, s.SysCPU, s.CPUPer = median(cpu), median(ucpu), median(scpu), median(per)
	s.LoopCPU = median(loop)
	s.PeakRSS, s.Sender, s.Other, s.Load = median(rss), median(snd), median(other), median(load)
	if len(in) > 0 {
		s.MinIn, s.MaxIn = slices.Min(in), slices.Max(in)
	}
	for k := range reasons {
		s.DropReasons = append(s.DropReasons, k)
	}
	slices.Sort(s.DropReasons)
	return s
}

func newReport(run []scenario, rs []result, h *harness, args []string) *report {
	r := &report{
		Date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
		CPU:       cpuModel(),
		GoVersion: runtime.Version(),
		Command:   "go run ./bench " + strings.Join(args, " "),
		Runs:      rs,
		Ratios:    map[string]float64{},
	}
	for _, size := range []int{1400, 16384} {
		if f := h.files[size]; f != nil {
			r.Files = append(r.Files, f)
		}
	}
	by := map[string]summary{}
	for _, sc := range run {
		s := summarise(sc, rs)
		r.Summaries = append(r.Summaries, s)
		by[sc.Name] = s
	}
	ok := func(name string) (summary, bool) {
		s, found := by[name]
		return s, found && s.Runs > 0
	}
	for _, p := range [][2]string{{"tcp-rr-1400", "relay-1400"}, {"tcp-rr-16k", "relay-16k"}, {"tcp-all-1400", "relay-all-1400"}} {
		b, ok1 := ok(p[0])
		rl, ok2 := ok(p[1])
		if ok1 && ok2 && rl.InRate > 0 {
			r.Ratios[p[0]] = b.InRate / rl.InRate
		}
	}
	if s, found := ok("tcp-rr-1400"); found {
		r.Targets = append(r.Targets,
			target{What: "RoundRobin 1400 B, in", Goal: "≥ 1.2 M msg/s", Value: s.InRate,
				Measured: fmt.Sprintf("%s msg/s", si(s.InRate)), Met: s.InRate >= 1.2e6},
			target{What: "RoundRobin 1400 B, in", Goal: "≥ 13 Gbit/s", Value: s.InGbps,
				Measured: fmt.Sprintf("%.1f Gbit/s", s.InGbps), Met: s.InGbps >= 13},
			target{What: "RoundRobin 1400 B, drops (sinks keep up)", Goal: "0", Value: float64(s.MaxDrops),
				Measured: fmt.Sprintf("%d (worst run)", s.MaxDrops), Met: s.MaxDrops == 0 && s.Incomplete == 0})
	}
	if s, found := ok("tcp-all-1400"); found {
		r.Targets = append(r.Targets, target{What: "All to 2, 1400 B, in", Goal: "≥ 0.6 M msg/s", Value: s.InRate,
			Measured: fmt.Sprintf("%s msg/s", si(s.InRate)), Met: s.InRate >= 0.6e6})
	}
	if s, found := ok("udp-rr-1400"); found {
		r.Targets = append(r.Targets, target{What: "UDP in, 1400 B datagrams", Goal: "≥ 800 k pps", Value: s.InRate,
			Measured: fmt.Sprintf("%s pps (sender %s pps, kernel drops %d)", si(s.InRate), si(s.Sender), s.MaxKernel),
			Met:      s.InRate >= 800e3})
	} else if s, found := by["udp-rr-1400"]; found {
		r.Targets = append(r.Targets, target{What: "UDP in, 1400 B datagrams", Goal: "≥ 800 k pps",
			Measured: "failed: " + firstLine(strings.Join(s.Errors, "; "))})
	}
	if s, found := ok("udp-burst-1400"); found {
		r.Targets = append(r.Targets, target{What: "UDP in, 1400 B datagrams, draining a full socket buffer", Goal: "≥ 800 k pps", Value: s.InRate,
			Measured: fmt.Sprintf("%s pps (kernel drops %d)", si(s.InRate), s.MaxKernel), Met: s.InRate >= 800e3})
	}
	if off, found := ok("tcp-rr-1400"); found {
		if on, found := ok("tcp-rr-1400-console"); found && off.CPUPer > 0 {
			v := on.CPUPer / off.CPUPer
			r.Targets = append(r.Targets, target{What: "console open and refreshing: CPU per message, on / off (tcp-rr-1400)",
				Goal: "≤ 1.10 (no change beyond the noise)", Value: v,
				Measured: fmt.Sprintf("%.2f (%.0f / %.0f ns; in %s / %s msg/s)", v, on.CPUPer, off.CPUPer, si(on.InRate), si(off.InRate)),
				Met:      v <= 1.10})
		}
	}
	for _, name := range []string{"tcp-rr-1400", "tcp-rr-16k", "tcp-all-1400"} {
		if v, found := r.Ratios[name]; found {
			r.Targets = append(r.Targets, target{What: "ratio to the minimal relay, " + name, Goal: "≥ 0.85", Value: v,
				Measured: fmt.Sprintf("%.2f", v), Met: v >= 0.85})
		}
	}
	return r
}

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "Date: %s · commit %s · CPU: %s · %s\n\n", r.Date, r.Commit, r.CPU, r.GoVersion)
	fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	for _, f := range r.Files {
		fmt.Fprintf(w, "- replay file %d B: %d messages (%d data), mean %d B\n", f.Size, f.Messages, f.Data, f.Bytes/f.Messages)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | runs | in msg/s (min–max) | out msg/s | in Gbit/s | out Gbit/s | drops | CPU % (usr+sys) | pinned thread CPU % | CPU ns/msg | peak RSS | sender msg/s | sender+sinks CPU % | other load % |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range r.Summaries {
		if s.Runs == 0 {
			fmt.Fprintf(w, "| %s | 0 of %d | FAILED: %s | | | | | | | | | | | |\n", s.Scenario.Name, s.Failed,
				mdEscape(firstLine(strings.Join(s.Errors, "; "))))
			continue
		}
		runs := fmt.Sprint(s.Runs)
		if s.Failed > 0 {
			runs += fmt.Sprintf(" (+%d failed)", s.Failed)
		}
		if s.Incomplete > 0 {
			runs += fmt.Sprintf(" (%d incomplete)", s.Incomplete)
		}
		drops := fmt.Sprint(s.MaxDrops)
		if len(s.DropReasons) > 0 {
			drops += " (" + strings.Join(s.DropReasons, ",") + ")"
		}
		if s.Scenario.Proto == "udp" {
			drops += fmt.Sprintf(" + %d in kernel", s.MaxKernel)
		}
		if s.Scenario.relay() {
			drops = "–"
		}
		sender, load, other := si(s.Sender), fmt.Sprintf("%.0f", s.Load), fmt.Sprintf("%.0f", s.Other)
		if s.Scenario.Burst {
			sender, load, other = "–", "–", "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s (%s–%s) | %s | %.2f | %.2f | %s | %.0f (%.0f+%.0f) | %.0f | %.0f | %.0f MiB | %s | %s | %s |\n",
			s.Scenario.Name, runs, si(s.InRate), si(s.MinIn), si(s.MaxIn), si(s.OutRate), s.InGbps, s.OutGbps,
			drops, s.CPU, s.UserCPU, s.SysCPU, s.LoopCPU, s.CPUPer, s.PeakRSS/(1<<20), sender, load, other)
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| target | goal | measured (median) | met |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, t := range r.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.What, t.Goal, mdEscape(t.Measured), met)
		}
	}
}

// si formats a rate: 1.23 M, 456 k.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f k", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " (+ uncommitted changes)"
	}
	return c
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	n := 0
	model := ""
	for l := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			n++
		}
	}
	return fmt.Sprintf("%s × %d", model, n)
}
