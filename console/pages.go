package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
)

var funcs = template.FuncMap{
	"rate":   func(v float64, unit string) string { return human(v, unit+"/s") },
	"bytes":  func(v int64) string { return human(float64(v), "B") },
	"ubytes": func(v uint64) string { return human(float64(v), "B") },
	"count":  func(v uint64) string { return human(float64(v), "") },
	"pct": func(n, d int64) string {
		if d <= 0 {
			return "–"
		}
		return strconv.FormatFloat(100*float64(n)/float64(d), 'f', 1, 64) + " %"
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"stamp":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"join":   strings.Join,
	"list3":  func() []string { return []string{"RoundRobin", "All", "Disabled"} },
	"fields": func() []string { return formFields },
	"level":  func(l slog.Level) string { return strings.ToLower(l.String()) },
}

// receiverView is a receiver on the overview.
type receiverView struct {
	balancer.ReceiverStatus
	Class                          string // "ok", "warn" (drops) or "bad" (a part down)
	Problems                       []string
	InMessages, InRecords, InBytes float64 // per second
	Drops                          float64 // messages/s dropped, every reason
	OutMessages, OutBytes          float64 // per second, to every subreceiver
	Subreceivers                   []outputView
	DumpClass                      string
	DumpErrors                     float64 // per second
}

type outputView struct {
	balancer.OutputStatus
	Class                   string
	SentMessages, SentBytes float64 // per second (shadows the totals)
	TotalSent               uint64
	Drops                   float64
	DropsTotal              uint64
}

type overviewData struct {
	Status    balancer.Status
	Receivers []receiverView
	Problems  []string
	Every     time.Duration
}

func (c *Console) overviewData() overviewData {
	st := c.status()
	d := overviewData{Status: st, Every: c.opts.SampleEvery}
	last := func(rc, out, name string) float64 {
		v, _ := c.samples.last(seriesKey(rc, out, name))
		return v
	}
	for _, rs := range st.Receivers {
		v := receiverView{ReceiverStatus: rs, Class: "ok",
			InMessages: last(rs.Name, "", seriesInMessages),
			InRecords:  last(rs.Name, "", seriesInRecords),
			InBytes:    last(rs.Name, "", seriesInBytes),
			Drops:      last(rs.Name, "", seriesDrops),
		}
		bad := func(format string, args ...any) {
			v.Class = "bad"
			v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
		}
		if !rs.Live {
			bad("%s: not running", rs.Name)
		}
		for _, o := range rs.Subreceivers {
			ov := outputView{OutputStatus: o, Class: "ok", TotalSent: o.SentMessages,
				SentMessages: last(rs.Name, o.Key, seriesSentMsgs),
				SentBytes:    last(rs.Name, o.Key, seriesSentBytes),
				Drops:        last(rs.Name, o.Key, seriesDrops),
				DropsTotal:   sum(o.Dropped),
			}
			switch {
			case !o.Up:
				ov.Class = "bad"
				bad("%s: subreceiver %s down", rs.Name, o.Addr)
			case ov.Drops > 0:
				ov.Class = "warn"
			case o.QueueMark > 0 && o.QueueBytes*2 > o.QueueMark:
				ov.Class = "warn"
			}
			v.Subreceivers = append(v.Subreceivers, ov)
			v.OutMessages += ov.SentMessages
			v.OutBytes += ov.SentBytes
		}
		if rs.Dump != nil {
			v.DumpClass = "ok"
			v.DumpErrors = last(rs.Name, "dump", seriesErrors)
			if !rs.Dump.Up || v.DumpErrors > 0 {
				v.DumpClass = "bad"
				bad("%s: dumps failing (%s)", rs.Name, rs.Dump.Dir)
			}
		}
		if v.Drops > 0 {
			if v.Class == "ok" {
				v.Class = "warn"
			}
			v.Problems = append(v.Problems, fmt.Sprintf("%s: dropping %s", rs.Name, human(v.Drops, "msg/s")))
		}
		d.Problems = append(d.Problems, v.Problems...)
		d.Receivers = append(d.Receivers, v)
	}
	return d
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	c.render(w, r, "overview", s, http.StatusOK, c.overviewData())
}

// plotView is one plot on the plots page.
type plotView struct {
	Title string
	SVG   template.HTML
}

type plotGroup struct {
	Name  string
	Class string
	Plots []plotView
}

func (c *Console) plots(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	st := c.status()
	now := time.Now()
	only := r.URL.Query().Get("receiver")
	plot := func(title, unit, key string, mark float64) plotView {
		return plotView{Title: title, SVG: svgPlot(title, unit, c.samples.get(key), now, sampleWindow, mark)}
	}
	var groups []plotGroup
	var names []string
	for _, rs := range st.Receivers {
		names = append(names, rs.Name)
		if only != "" && only != rs.Name {
			continue
		}
		g := plotGroup{Name: "receiver " + rs.Name, Class: "receiver"}
		g.Plots = append(g.Plots,
			plot(rs.Name+" messages in", "msg/s", seriesKey(rs.Name, "", seriesInMessages), 0),
			plot(rs.Name+" records in", "rec/s", seriesKey(rs.Name, "", seriesInRecords), 0),
			plot(rs.Name+" bytes in", "B/s", seriesKey(rs.Name, "", seriesInBytes), 0),
			plot(rs.Name+" drops", "msg/s", seriesKey(rs.Name, "", seriesDrops), 0))
		if rs.Dump != nil {
			g.Plots = append(g.Plots, plot(rs.Name+" dump writer queue", "B", seriesKey(rs.Name, "dump", seriesQueue), float64(rs.Dump.QueueMark)))
		}
		groups = append(groups, g)
		for _, o := range rs.Subreceivers {
			name := rs.Name + " → " + o.Addr
			groups = append(groups, plotGroup{Name: "subreceiver " + o.Key + " of " + rs.Name, Class: "subreceiver", Plots: []plotView{
				plot(name+" messages sent", "msg/s", seriesKey(rs.Name, o.Key, seriesSentMsgs), 0),
				plot(name+" queue", "B", seriesKey(rs.Name, o.Key, seriesQueue), float64(o.QueueMark)),
				plot(name+" drops", "msg/s", seriesKey(rs.Name, o.Key, seriesDrops), 0),
			}})
		}
	}
	c.render(w, r, "plots", s, http.StatusOK, map[string]any{"Groups": groups, "Receivers": names, "Only": only, "Every": c.opts.SampleEvery})
}

// plotSVG serves one series alone: /plot.svg?receiver=fullflow/0&output=&series=in_messages.
func (c *Console) plotSVG(w http.ResponseWriter, r *http.Request, _ *operatorSession) {
	q := r.URL.Query()
	key := seriesKey(q.Get("receiver"), q.Get("output"), q.Get("series"))
	pts := c.samples.get(key)
	if pts == nil {
		http.NotFound(w, r)
		return
	}
	unit := "msg/s"
	switch q.Get("series") {
	case seriesQueue:
		unit = "B"
	case seriesInBytes, seriesSentBytes:
		unit = "B/s"
	case seriesInRecords:
		unit = "rec/s"
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, svgPlot(key, unit, pts, time.Now(), sampleWindow, 0))
}

// logFilter is the logs page's query.
type logFilter struct {
	Level    string
	Receiver string
	After    uint64
}

func parseLogFilter(r *http.Request) (logFilter, slog.Level) {
	q := r.URL.Query()
	f := logFilter{Level: q.Get("level"), Receiver: q.Get("receiver")}
	f.After, _ = strconv.ParseUint(q.Get("after"), 10, 64)
	var l slog.Level
	if err := l.UnmarshalText([]byte(f.Level)); err != nil {
		f.Level, l = "debug", slog.LevelDebug
	}
	return f, l
}

// maxLogLines bounds what one page shows.
const maxLogLines = 500

func (c *Console) logLines(r *http.Request) ([]LogLine, logFilter) {
	f, l := parseLogFilter(r)
	if c.opts.Logs == nil {
		return nil, f
	}
	lines := c.opts.Logs.Lines(f.After, l, f.Receiver)
	if len(lines) > maxLogLines {
		lines = lines[len(lines)-maxLogLines:]
	}
	return lines, f
}

func (c *Console) logsPage(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	lines, f := c.logLines(r)
	slices.Reverse(lines) // newest first
	var names []string
	for _, rc := range c.status().Config.Receivers {
		names = append(names, rc.Name())
	}
	var seq uint64
	if len(lines) > 0 {
		seq = lines[0].Seq
	}
	c.render(w, r, "logs", s, http.StatusOK, map[string]any{"Lines": lines, "Filter": f, "Receivers": names,
		"Levels": []string{"debug", "info", "warn", "error"}, "Seq": seq})
}

// logsJSON serves the lines after ?after= for the page's live follow.
func (c *Console) logsJSON(w http.ResponseWriter, r *http.Request, _ *operatorSession) {
	lines, _ := c.logLines(r)
	type jsonLine struct {
		Seq      uint64 `json:"seq"`
		Time     string `json:"time"`
		Level    string `json:"level"`
		Message  string `json:"msg"`
		Receiver string `json:"receiver"`
		Attrs    string `json:"attrs"`
	}
	out := make([]jsonLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, jsonLine{l.Seq, l.Time.UTC().Format("2006-01-02 15:04:05.000Z"), strings.ToLower(l.Level.String()), l.Message, l.Receiver, l.Attrs})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}
