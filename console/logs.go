package console

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// LogLine is one log record kept by a LogRing.
type LogLine struct {
	Seq      uint64
	Time     time.Time
	Level    slog.Level
	Message  string
	Receiver string // the "receiver" attribute, if any
	Attrs    string // the other attributes, as key=value
}

// LogRing keeps the last lines logged through its Handler. Safe for
// concurrent use.
type LogRing struct {
	mu    sync.Mutex
	lines []LogLine // circular, len == cap once full
	next  int
	seq   uint64
}

// NewLogRing returns a ring of n lines.
func NewLogRing(n int) *LogRing {
	return &LogRing{lines: make([]LogLine, 0, n)}
}

func (l *LogRing) add(line LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	line.Seq = l.seq
	if len(l.lines) < cap(l.lines) {
		l.lines = append(l.lines, line)
		return
	}
	l.lines[l.next] = line
	l.next = (l.next + 1) % len(l.lines)
}

// Lines returns the kept lines after seq (0: all), oldest first, that are at
// least minLevel and, when receiver is not "", carry that receiver.
func (l *LogRing) Lines(after uint64, minLevel slog.Level, receiver string) []LogLine {
	l.mu.Lock()
	all := slices.Concat(l.lines[l.next:], l.lines[:l.next])
	l.mu.Unlock()
	out := all[:0]
	for _, line := range all {
		if line.Seq > after && line.Level >= minLevel && (receiver == "" || line.Receiver == receiver) {
			out = append(out, line)
		}
	}
	return out
}

// Handler returns a slog.Handler that hands every record to next and keeps it
// in the ring (the records next would log: the ring follows next's level).
func (l *LogRing) Handler(next slog.Handler) slog.Handler {
	return &teeHandler{next: next, ring: l}
}

type teeHandler struct {
	next     slog.Handler
	ring     *LogRing
	attrs    []slog.Attr // from WithAttrs, already prefixed with their group
	group    string      // "a.b." from WithGroup
	receiver string
}

var _ slog.Handler = (*teeHandler)(nil)

func (h *teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	line := LogLine{Time: r.Time, Level: r.Level, Message: r.Message, Receiver: h.receiver}
	var b strings.Builder
	add := func(a slog.Attr) {
		if a.Key == "receiver" && h.group == "" {
			line.Receiver = a.Value.String()
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \"=") {
			v = `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
		}
		b.WriteString(v)
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.group + a.Key
		add(a)
		return true
	})
	line.Attrs = b.String()
	h.ring.add(line)
	return h.next.Handle(ctx, r)
}

func (h *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.next = h.next.WithAttrs(attrs)
	n.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		if a.Key == "receiver" && h.group == "" {
			n.receiver = a.Value.String()
			continue
		}
		a.Key = h.group + a.Key
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.next = h.next.WithGroup(name)
	n.group = h.group + name + "."
	return &n
}
