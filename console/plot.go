package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH       = 640, 150
	plotLeft, plotTop  = 64, 18
	plotRight, plotBot = 8, 22
)

// svgPlot draws points over the window ending at now as an SVG line chart:
// the y axis from 0 to the largest value (or mark, when set: a dashed line),
// labelled in unit.
func svgPlot(title, unit string, pts []point, now time.Time, window time.Duration, mark float64) template.HTML {
	iw, ih := float64(plotW-plotLeft-plotRight), float64(plotH-plotTop-plotBot)
	top := mark
	for _, p := range pts {
		top = math.Max(top, p.V)
	}
	if top <= 0 {
		top = 1
	}
	if strings.HasPrefix(unit, "B") {
		// Bytes: round in KiB, MiB, GiB so that the labels read 32 MiB, not 33.6.
		scale := 1.0
		for scale*1024 <= top {
			scale *= 1024
		}
		top = niceCeil(top/scale) * scale
	} else {
		top = niceCeil(top)
	}
	// The x axis spans the samples kept, up to window: a daemon started a
	// minute ago shows its minute, not a dot at the end of an empty hour.
	span := time.Minute
	if len(pts) > 0 {
		span = min(window, max(span, now.Sub(pts[0].T)))
	}
	x := func(t time.Time) float64 {
		return plotLeft + iw*(1-now.Sub(t).Seconds()/span.Seconds())
	}
	y := func(v float64) float64 { return plotTop + ih*(1-v/top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" role="img" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg" data-points="%d">`, plotW, plotH, plotW, plotH, len(pts))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="12" class="ptitle">%s</text>`, plotLeft, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" class="pframe"/>`, plotLeft, plotTop, iw, ih)
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="pgrid"/>`, plotLeft, plotW-plotRight, y(top*f), y(top*f))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="plabel" text-anchor="end">%s</text>`, plotLeft-4, y(top*f)+4, template.HTMLEscapeString(human(top*f, unit)))
	}
	for _, q := range []int{4, 3, 2, 1, 0} {
		ago := span * time.Duration(q) / 4
		label := "now"
		if ago > 0 {
			label = "−" + ago.Round(time.Second).String()
		}
		anchor := "middle"
		if q == 4 {
			anchor = "start"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="plabel" text-anchor="%s">%s</text>`, x(now.Add(-ago)), plotH-6, anchor, label)
	}
	if mark > 0 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="pmark"><title>mark %s</title></line>`, plotLeft, plotW-plotRight, y(mark), y(mark), template.HTMLEscapeString(human(mark, unit)))
	}
	if len(pts) > 0 {
		b.WriteString(`<polyline class="pline" points="`)
		for i, p := range pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", math.Max(plotLeft, x(p.T)), y(p.V))
		}
		b.WriteString(`"/>`)
	} else {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="plabel" text-anchor="middle">no samples yet</text>`, plotLeft+iw/2, plotTop+ih/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// human formats v with an SI prefix: "1.5 k msg/s", "32 MiB" for bytes.
func human(v float64, unit string) string {
	if strings.HasPrefix(unit, "B") {
		for _, p := range []struct {
			d float64
			s string
		}{{1 << 30, "Gi"}, {1 << 20, "Mi"}, {1 << 10, "Ki"}} {
			if v >= p.d {
				return trim(v/p.d) + " " + p.s + unit
			}
		}
		return trim(v) + " " + unit
	}
	for _, p := range []struct {
		d float64
		s string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= p.d {
			return strings.TrimSpace(trim(v/p.d) + " " + p.s + unit)
		}
	}
	return strings.TrimSpace(trim(v) + " " + unit)
}

func trim(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	if v >= 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
