package loadtest

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH         = 900, 360
	plotLeft, plotRight  = 70, 20
	plotTop, plotBottom  = 50, 40
	plotInnerW           = plotW - plotLeft - plotRight
	plotInnerH           = plotH - plotTop - plotBottom
	plotMinLatency       = 1.0 // µs, the bottom of the log axis at most
	plotThroughputMargin = 1.1
)

// series styles: one colour per statistic, a dash pattern per system.
var (
	plotStats = []struct {
		name   string
		colour string
		value  func(Interval) float64
	}{
		{"p50", "#1f77b4", func(iv Interval) float64 { return iv.P50 }},
		{"p99", "#d62728", func(iv Interval) float64 { return iv.P99 }},
		{"max", "#7f7f7f", func(iv Interval) float64 { return iv.Max }},
	}
	plotDash = map[string]string{"mig": "", "redis": "6,4"}
)

// WritePlot writes r's latency-over-time series (p50, p99 and max of each
// interval, on a log scale) and its throughput as a self-contained HTML
// page: inline SVG, no script, nothing fetched.
func WritePlot(w io.Writer, r *Report) error {
	results := []*Result{&r.MIG}
	if r.Redis != nil {
		results = append(results, r.Redis)
	}
	var b strings.Builder
	title := fmt.Sprintf("mig loadtest: %s mode, %s loop, %d clients, batch %d", r.MIG.Mode, r.MIG.Loop, r.MIG.Clients, r.MIG.Batch)
	if r.MIG.Loop == "open" {
		title += fmt.Sprintf(", %g requests/s", r.MIG.Rate)
	}
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%[1]s</title>
<style>body{font-family:sans-serif;margin:2em}svg{display:block;margin-bottom:2em}
text{font-size:12px}.axis{stroke:#000}.grid{stroke:#ddd}</style></head>
<body><h1>%[1]s</h1>
`, html.EscapeString(title))
	for _, res := range results {
		fmt.Fprintf(&b, "<p>%s: %.0f requests/s, latency p50 %s, p99 %s, max %s; check: %s</p>\n",
			res.System, res.RequestsPerSec, fmtMicros(res.Latency.P50), fmtMicros(res.Latency.P99), fmtMicros(res.Latency.Max),
			html.EscapeString(res.Check.Summary()))
	}
	b.WriteString("<h2>Latency per interval</h2>\n")
	writeLatencyPlot(&b, results)
	b.WriteString("<h2>Requests per second</h2>\n")
	writeThroughputPlot(&b, results)
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// span of the time axis, in seconds.
func plotDuration(results []*Result) float64 {
	d := 0.0
	for _, r := range results {
		for _, iv := range r.Series {
			d = max(d, iv.At)
		}
	}
	if d <= 0 {
		d = 1
	}
	return d
}

func plotX(t, d float64) float64 { return plotLeft + t/d*plotInnerW }

func writeLatencyPlot(b *strings.Builder, results []*Result) {
	d := plotDuration(results)
	lo, hi := math.Inf(1), 0.0
	for _, r := range results {
		for _, iv := range r.Series {
			for _, s := range plotStats {
				if v := s.value(iv); v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	// Whole decades, so that the grid lines fall on 1, 10, 100 ... µs.
	lo = max(math.Pow(10, math.Floor(math.Log10(max(lo, plotMinLatency)))), plotMinLatency)
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	y := func(v float64) float64 {
		v = min(max(v, lo), hi)
		return plotTop + plotInnerH - (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*plotInnerH
	}
	openSVG(b, "latency over time")
	for v := lo; v <= hi*1.0001; v *= 10 {
		gridLine(b, y(v), fmtMicros(v))
	}
	timeAxis(b, d)
	for _, r := range results {
		for _, s := range plotStats {
			polyline(b, r.Series, d, func(iv Interval) float64 { return y(s.value(iv)) }, s.colour, plotDash[r.System])
		}
	}
	var items []legendItem
	for _, r := range results {
		for _, s := range plotStats {
			items = append(items, legendItem{r.System + " " + s.name, s.colour, plotDash[r.System]})
		}
	}
	legend(b, items)
	b.WriteString("</svg>\n")
}

func writeThroughputPlot(b *strings.Builder, results []*Result) {
	d := plotDuration(results)
	rate := func(iv Interval) float64 {
		if iv.Seconds <= 0 {
			return 0
		}
		return float64(iv.Requests) / iv.Seconds
	}
	hi := 0.0
	for _, r := range results {
		for _, iv := range r.Series {
			hi = max(hi, rate(iv))
		}
	}
	hi = niceCeil(max(hi*plotThroughputMargin, 1))
	y := func(v float64) float64 { return plotTop + plotInnerH - v/hi*plotInnerH }
	openSVG(b, "requests per second over time")
	for i := 0; i <= 4; i++ {
		v := hi * float64(i) / 4
		gridLine(b, y(v), fmt.Sprintf("%.0f", v))
	}
	timeAxis(b, d)
	var items []legendItem
	for _, r := range results {
		polyline(b, r.Series, d, func(iv Interval) float64 { return y(rate(iv)) }, "#2ca02c", plotDash[r.System])
		items = append(items, legendItem{r.System + " requests/s", "#2ca02c", plotDash[r.System]})
	}
	legend(b, items)
	b.WriteString("</svg>\n")
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func openSVG(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">
`, plotW, plotH, plotW, plotH, html.EscapeString(label))
}

func gridLine(b *strings.Builder, y float64, label string) {
	fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/><text x="%d" y="%.1f" text-anchor="end">%s</text>
`, plotLeft, y, plotW-plotRight, y, plotLeft-5, y+4, html.EscapeString(label))
}

func timeAxis(b *strings.Builder, d float64) {
	fmt.Fprintf(b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>
`, plotLeft, plotTop+plotInnerH, plotW-plotRight, plotTop+plotInnerH)
	step := niceCeil(d / 8)
	for t := 0.0; t <= d*1.0001; t += step {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%gs</text>
`, plotX(t, d), plotTop+plotInnerH+16, t)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">seconds since the start</text>
`, plotLeft+plotInnerW/2, plotH-4)
}

func polyline(b *strings.Builder, series []Interval, d float64, y func(Interval) float64, colour, dash string) {
	var pts strings.Builder
	for _, iv := range series {
		if iv.Requests == 0 {
			continue
		}
		fmt.Fprintf(&pts, "%.1f,%.1f ", plotX(iv.At, d), y(iv))
	}
	if pts.Len() == 0 {
		return
	}
	dashAttr := ""
	if dash != "" {
		dashAttr = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>
`, colour, dashAttr, strings.TrimSpace(pts.String()))
}

type legendItem struct{ label, colour, dash string }

func legend(b *strings.Builder, items []legendItem) {
	for i, it := range items {
		x := plotLeft + 10 + (i%3)*150
		y := 12 + (i/3)*16 // above the plot area
		dashAttr := ""
		if it.dash != "" {
			dashAttr = fmt.Sprintf(` stroke-dasharray="%s"`, it.dash)
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>
`, x, y, x+24, y, it.colour, dashAttr, x+30, y+4, html.EscapeString(it.label))
	}
}
