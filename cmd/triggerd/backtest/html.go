package backtest

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"
)

// WriteHTML writes the report as one self-contained HTML page: inline CSS,
// inline SVG charts and a few lines of inline script that check the charts
// drew (the page's body gets data-charts-rendered, the count of charts
// with a non-empty drawing, and data-errors, script errors if any). It
// loads nothing from the network.
func (r *Report) WriteHTML(w io.Writer) error {
	page := htmlPage{R: r}
	for _, id := range r.Rules {
		page.RuleCharts = append(page.RuleCharts, dayChart(id, r.Days, r.Baseline.PerDay[id], r.Candidate.PerDay[id]))
	}
	if keys := policyKeys(r); len(keys) > 0 {
		page.PolicyChart = policyChart(keys, r)
	}
	page.Stages = stageRows(r)
	return pageTemplate.Execute(w, page)
}

// stageRow is one rule, stage and channel with both sides' counts.
type stageRow struct {
	Rule, Channel string
	Stage         int32
	Base, Cand    int
}

func stageRows(r *Report) []stageRow {
	var rows []stageRow
	find := func(k StageCount) *stageRow {
		for i := range rows {
			if rows[i].Rule == k.Rule && rows[i].Stage == k.Stage && rows[i].Channel == k.Channel {
				return &rows[i]
			}
		}
		rows = append(rows, stageRow{Rule: k.Rule, Stage: k.Stage, Channel: k.Channel})
		return &rows[len(rows)-1]
	}
	for _, k := range r.Baseline.ByStage {
		find(k).Base = k.Count
	}
	for _, k := range r.Candidate.ByStage {
		find(k).Cand = k.Count
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		return a.Channel < b.Channel
	})
	return rows
}

type htmlPage struct {
	R           *Report
	RuleCharts  []chart
	PolicyChart *chart
	Stages      []stageRow
}

// chart is an SVG bar chart laid out in Go: the page needs no script to
// draw it.
type chart struct {
	Title         string
	Width, Height int
	Bars          []bar
	Labels        []label
}

type bar struct {
	X, Y, W, H float64
	Class      string // baseline or candidate
	Title      string // the tooltip
}

type label struct {
	X, Y   float64
	Text   string
	Anchor string
}

const (
	chartW, chartH = 720, 220
	padL, padB     = 48, 36
	padT           = 16
)

// dayChart draws triggers per day, baseline and candidate side by side.
func dayChart(rule string, days []string, base, cand []int) chart {
	c := chart{Title: rule, Width: chartW, Height: chartH}
	peak := 1
	for i := range days {
		peak = max(peak, at(base, i), at(cand, i))
	}
	plotW, plotH := float64(chartW-padL-8), float64(chartH-padT-padB)
	slot := plotW / float64(max(1, len(days)))
	bw := slot * 0.38
	for i, day := range days {
		x := float64(padL) + slot*float64(i) + slot*0.1
		for k, v := range []int{at(base, i), at(cand, i)} {
			h := plotH * float64(v) / float64(peak)
			cls := [...]string{"baseline", "candidate"}[k]
			c.Bars = append(c.Bars, bar{X: x + float64(k)*bw, Y: float64(padT) + plotH - h, W: bw, H: h, Class: cls,
				Title: fmt.Sprintf("%s %s: %d %s", rule, day, v, cls)})
		}
		if len(days) <= 16 || i%((len(days)+15)/16) == 0 {
			c.Labels = append(c.Labels, label{X: x + bw, Y: float64(chartH - padB + 16), Text: day[5:], Anchor: "middle"})
		}
	}
	c.Labels = append(c.Labels, label{X: padL - 6, Y: padT + 4, Text: fmt.Sprint(peak), Anchor: "end"},
		label{X: padL - 6, Y: float64(padT) + plotH, Text: "0", Anchor: "end"})
	return c
}

// policyChart draws suppressions and deferrals by reason and policy as
// horizontal bars.
func policyChart(keys []PolicyCount, r *Report) *chart {
	row := 34.0
	c := &chart{Title: "suppressions and deferrals", Width: chartW, Height: int(row*float64(len(keys))) + padT + 8}
	peak := 1
	for _, k := range keys {
		peak = max(peak, count(r.Baseline.Suppressions, k), count(r.Candidate.Suppressions, k))
	}
	left, plotW := 260.0, float64(chartW)-260-60
	for i, k := range keys {
		y := float64(padT) + row*float64(i)
		c.Labels = append(c.Labels, label{X: left - 8, Y: y + 16, Text: k.label(), Anchor: "end"})
		for j, v := range []int{count(r.Baseline.Suppressions, k), count(r.Candidate.Suppressions, k)} {
			cls := [...]string{"baseline", "candidate"}[j]
			w := plotW * float64(v) / float64(peak)
			c.Bars = append(c.Bars, bar{X: left, Y: y + float64(j)*13, W: w, H: 12, Class: cls, Title: fmt.Sprintf("%s: %d %s", k.label(), v, cls)})
			c.Labels = append(c.Labels, label{X: left + w + 4, Y: y + float64(j)*13 + 10, Text: fmt.Sprint(v), Anchor: "start"})
		}
	}
	return c
}

func at(xs []int, i int) int {
	if i < len(xs) {
		return xs[i]
	}
	return 0
}

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"tsp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
	"change": change,
	"count":  count,
	"keys":   policyKeys,
	"f1":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f0":     func(v float64) string { return fmt.Sprintf("%.0f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>triggerd backtest {{ts .R.From}} – {{ts .R.To}}</title>
<script>
window.onerror = function (msg) {
  var b = document.body || document.documentElement;
  b.setAttribute("data-errors", (b.getAttribute("data-errors") || "") + msg + ";");
};
</script>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:780px;color:#1f2933;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e4e7eb;padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin:6px 0}td,th{padding:4px 8px;border-bottom:1px solid #eef0f2;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.baseline{fill:#9aa5b1}.candidate{fill:#2563eb}.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
.key .b{background:#9aa5b1}.key .c{background:#2563eb}.muted{color:#616e7c;font-size:13px}
svg text{font-size:11px;fill:#52606d}.up{color:#0b7a3e}.down{color:#b42318}
.note{background:#fffbea;border:1px solid #f0e0a0;padding:8px 12px;border-radius:6px;font-size:13px}
</style></head>
<body>
<h1>Backtest: what the candidate rules would have sent</h1>
<div class="muted">{{ts .R.From}} to {{ts .R.To}} (event time) · baseline <b>{{.R.Baseline.Rules}}</b> · candidate <b>{{.R.Candidate.Rules}}</b></div>
<table>
<tr><th></th><th class="n">baseline</th><th class="n">candidate</th><th class="n">change</th></tr>
<tr><td>triggers</td><td class="n">{{.R.Baseline.Triggers}}</td><td class="n">{{.R.Candidate.Triggers}}</td><td class="n">{{change .R.Baseline.Triggers .R.Candidate.Triggers}}</td></tr>
<tr><td>suppressed</td><td class="n">{{.R.Baseline.Suppressed}}</td><td class="n">{{.R.Candidate.Suppressed}}</td><td class="n">{{change .R.Baseline.Suppressed .R.Candidate.Suppressed}}</td></tr>
<tr><td>deferred</td><td class="n">{{.R.Baseline.Deferred}}</td><td class="n">{{.R.Candidate.Deferred}}</td><td class="n">{{change .R.Baseline.Deferred .R.Candidate.Deferred}}</td></tr>
<tr><td>customers whose triggers differ</td><td class="n" colspan="3">{{.R.Differences.Customers}}</td></tr>
</table>

<h2>Triggers per day, by rule</h2>
<div class="key"><span class="b"></span>baseline<span class="c"></span>candidate</div>
{{range .RuleCharts}}
<h3 style="font-size:14px;margin:14px 0 2px">{{.Title}}</h3>
<svg class="chart" role="img" aria-label="{{.Title}} triggers per day" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
{{range .Bars}}<rect class="{{.Class}}" x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="{{printf "%.1f" .W}}" height="{{printf "%.1f" .H}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Labels}}<text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}</svg>
{{end}}

<h2>Triggers by rule, stage and channel</h2>
<table><tr><th>rule</th><th>stage</th><th>channel</th><th class="n">baseline</th><th class="n">candidate</th></tr>
{{range .Stages}}<tr><td>{{.Rule}}</td><td>{{.Stage}}</td><td>{{.Channel}}</td><td class="n">{{.Base}}</td><td class="n">{{.Cand}}</td></tr>
{{end}}</table>

<h2>Suppressions and deferrals by reason and policy</h2>
{{with .PolicyChart}}
<svg class="chart" role="img" aria-label="suppressions by reason and policy" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
{{range .Bars}}<rect class="{{.Class}}" x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="{{printf "%.1f" .W}}" height="{{printf "%.1f" .H}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Labels}}<text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}</svg>
{{else}}<p class="muted">Neither side suppressed or deferred anything in the range.</p>{{end}}

<h2>Customers whose triggers differ</h2>
<p>{{.R.Differences.Customers}} customers: {{.R.Differences.OnlyBaseline}} triggers only in the baseline,
{{.R.Differences.OnlyCandidate}} only in the candidate, {{.R.Differences.Moved}} moved. Examples:</p>
<table><tr><th>customer</th><th>rule</th><th>change</th><th>due (baseline → candidate)</th><th>why</th></tr>
{{range .R.Differences.Examples}}<tr><td>{{.Customer}}</td><td>{{.Rule}} stage {{.Stage}} {{.Channel}}</td><td>{{.Change}}</td>
<td>{{tsp .BaselineDue}} → {{tsp .CandidateDue}}</td><td>{{.Explanation}}</td></tr>
{{end}}</table>

<h2>Cost of the run</h2>
<table><tr><th></th><th class="n">events</th><th class="n">wall s</th><th class="n">CPU s</th><th class="n">events/s</th></tr>
<tr><td>copy of the retained inputs</td><td class="n">{{.R.Replay.Copy.Events}}</td><td class="n">{{f1 .R.Replay.Copy.WallSeconds}}</td><td class="n">{{f1 .R.Replay.Copy.CPUSeconds}}</td><td class="n">{{f0 .R.Replay.Copy.EventsPerSecond}}</td></tr>
<tr><td>baseline replay</td><td class="n">{{.R.Baseline.Cost.Events}}</td><td class="n">{{f1 .R.Baseline.Cost.WallSeconds}}</td><td class="n">{{f1 .R.Baseline.Cost.CPUSeconds}}</td><td class="n">{{f0 .R.Baseline.Cost.EventsPerSecond}}</td></tr>
<tr><td>candidate replay</td><td class="n">{{.R.Candidate.Cost.Events}}</td><td class="n">{{f1 .R.Candidate.Cost.WallSeconds}}</td><td class="n">{{f1 .R.Candidate.Cost.CPUSeconds}}</td><td class="n">{{f0 .R.Candidate.Cost.EventsPerSecond}}</td></tr>
<tr><td><b>total</b></td><td class="n">{{.R.Replay.Total.Events}}</td><td class="n">{{f1 .R.Replay.Total.WallSeconds}}</td><td class="n">{{f1 .R.Replay.Total.CPUSeconds}}</td><td class="n"></td></tr>
</table>
<p class="note"><b>What is approximate.</b> {{.R.Approximate}} The state was rebuilt from {{ts .R.Replay.Earliest}}.</p>
<script>
(function () {
  var n = 0, charts = document.querySelectorAll("svg.chart");
  for (var i = 0; i < charts.length; i++) {
    var box = charts[i].getBBox();
    if (box.width > 0 && box.height > 0 && charts[i].querySelectorAll("rect").length > 0) n++;
  }
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-charts-rendered", String(n));
})();
</script>
</body></html>
`))
