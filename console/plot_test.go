package console

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSVGPlot(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	var pts []point
	for i := range 120 { // ten minutes at 5s
		pts = append(pts, point{T: now.Add(-time.Duration(120-i) * 5 * time.Second), V: float64(i)})
	}
	svg := string(svgPlot("in", "msg/s", pts, now, time.Hour, 0))
	assert.Contains(t, svg, `data-points="120"`)
	// The axis spans the ten minutes kept, labelled from −10m0s to now.
	assert.Contains(t, svg, ">−10m0s<")
	assert.Contains(t, svg, ">−5m0s<")
	assert.Contains(t, svg, ">now<")
	// The first point is at the left edge, the last near the right one.
	line := svg[strings.Index(svg, `class="pline" points="`)+22:]
	line = line[:strings.IndexByte(line, '"')]
	xy := strings.Fields(line)
	assert.Len(t, xy, 120)
	assert.Equal(t, "64.0,128.0", xy[0], "first point: left edge, at 0")
	assert.Contains(t, svg, ">200 msg/s<", "y axis rounded up from 119")

	empty := string(svgPlot("in", "msg/s", nil, now, time.Hour, 0))
	assert.Contains(t, empty, "no samples yet")
	assert.NotContains(t, empty, "<polyline")

	withMark := string(svgPlot("queue", "B", pts[:1], now, time.Hour, 32<<20))
	assert.Contains(t, withMark, `class="pmark"`)
	assert.Contains(t, withMark, "<title>mark 32 MiB</title>")
	assert.Contains(t, withMark, ">50 MiB<", "a byte axis is rounded in MiB")
}

func TestSamplesRing(t *testing.T) {
	r := ring{points: make([]point, 0, 3)}
	for i := range 5 {
		r.add(point{V: float64(i)})
	}
	got := r.all()
	assert.Equal(t, []float64{2, 3, 4}, []float64{got[0].V, got[1].V, got[2].V})
	last, ok := r.last()
	assert.True(t, ok)
	assert.Equal(t, 4.0, last.V)
}
