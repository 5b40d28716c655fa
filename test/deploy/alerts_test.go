package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// alertTests is test/deploy/alerts_test.yaml, the promtool unit tests of
// the alert rules, as far as the checks below read it.
type alertTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readAlertTests(t *testing.T) alertTests {
	t.Helper()
	data, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var at alertTests
	if err := yaml.Unmarshal(data, &at); err != nil {
		t.Fatalf("alerts_test.yaml: %v", err)
	}
	return at
}

// TestAlertRuleTests runs the promtool unit tests of the alert rules
// (alerts_test.yaml) on a copy of deploy/prometheus/alerts.yaml without its
// annotations: promtool compares annotations word for word, and the runbook
// text is checked by TestAlertRulesDocumented.
func TestAlertRuleTests(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not on PATH (Debian: apt-get install prometheus; .ci/run installs it)")
		}
		t.Skip("promtool is not on PATH (Debian: apt-get install prometheus)")
	}
	data, err := os.ReadFile(root + "deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	stripped := 0
	var strip func(n *yaml.Node)
	strip = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "annotations" {
					n.Content = append(n.Content[:i], n.Content[i+2:]...)
					stripped++
					i -= 2
					continue
				}
				strip(n.Content[i+1])
			}
			return
		}
		for _, c := range n.Content {
			strip(c)
		}
	}
	strip(&doc)
	if n := len(alertRules(t)); stripped != n {
		t.Fatalf("stripped the annotations of %d rules, the file has %d alerts", stripped, n)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if at := readAlertTests(t); len(at.RuleFiles) != 1 || at.RuleFiles[0] != "alerts.yaml" {
		t.Fatalf("alerts_test.yaml: rule_files %v, want [alerts.yaml] (the copy this test writes next to it)", at.RuleFiles)
	}
	dir := t.TempDir()
	tests, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yaml"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", filepath.Join(dir, "alerts_test.yaml"))
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, res)
	}
	t.Logf("promtool test rules: %s", strings.TrimSpace(string(res)))
}

// TestEveryAlertTested: every alert of deploy/prometheus/alerts.yaml has a
// case in alerts_test.yaml where it fires and one where it must not; and an
// alert on a counter's increase or rate has a firing case for the first
// event after a start: its counter at 0 (or absent) first, then 1. That is
// the case a series created at the first event (at 1) misses.
func TestEveryAlertTested(t *testing.T) {
	at := readAlertTests(t)
	type cases struct{ firing, quiet, firstEvent []string }
	byAlert := map[string]*cases{}
	for _, r := range alertRules(t) {
		byAlert[r.Alert] = &cases{}
	}
	for _, tc := range at.Tests {
		for _, rt := range tc.AlertRuleTest {
			c := byAlert[rt.Alertname]
			if c == nil {
				t.Errorf("test %q checks alert %s, which alerts.yaml does not have", tc.Name, rt.Alertname)
				continue
			}
			if len(rt.ExpAlerts) == 0 {
				c.quiet = append(c.quiet, tc.Name)
				continue
			}
			c.firing = append(c.firing, tc.Name)
			for _, in := range tc.InputSeries {
				if firstEventSeries(t, in.Values) {
					c.firstEvent = append(c.firstEvent, tc.Name+": "+in.Series)
				}
			}
		}
	}
	for _, r := range alertRules(t) {
		c := byAlert[r.Alert]
		if len(c.firing) == 0 {
			t.Errorf("alert %s has no promtool test where it fires", r.Alert)
		}
		if len(c.quiet) == 0 {
			t.Errorf("alert %s has no promtool test where it must not fire", r.Alert)
		}
		if strings.Contains(r.Expr, "increase(") || strings.Contains(r.Expr, "rate(") {
			counters := seriesIn(r.Expr)
			found := false
			for _, s := range c.firstEvent {
				for _, name := range counters {
					found = found || strings.Contains(s, ": "+name+"{")
				}
			}
			if !found {
				t.Errorf("alert %s (%s) has no firing test for the first event after a start: %v at 0 (or absent), then 1",
					r.Alert, r.Expr, counters)
			}
		}
	}
}

// firstEventSeries reports input values (promtool's notation) that start
// with samples at 0 or absent, then go to 1: a counter's first event.
func firstEventSeries(t *testing.T, values string) bool {
	t.Helper()
	vals := expandValues(t, values)
	for i, v := range vals {
		if v == nil || *v == 0 {
			continue
		}
		return i > 0 && *v == 1
	}
	return false
}

// expandValues expands promtool's series notation: "a", "_", "axn", "_xn",
// "a+bxn", "a-bxn" (n+1 values for a, n for _). nil is an absent sample.
func expandValues(t *testing.T, values string) []*float64 {
	t.Helper()
	var out []*float64
	for _, tok := range strings.Fields(values) {
		base, times, hasTimes := strings.Cut(tok, "x")
		n := 0
		if hasTimes {
			var err error
			if n, err = strconv.Atoi(times); err != nil {
				t.Fatalf("values %q: %q", values, tok)
			}
		}
		if base == "_" {
			for range max(n, 1) {
				out = append(out, nil)
			}
			continue
		}
		start, step := base, 0.0
		if i := strings.LastIndexAny(base, "+-"); i > 0 {
			s, err := strconv.ParseFloat(base[i:], 64)
			if err != nil {
				t.Fatalf("values %q: %q", values, tok)
			}
			start, step = base[:i], s
		}
		a, err := strconv.ParseFloat(start, 64)
		if err != nil {
			t.Fatalf("values %q: %q", values, tok)
		}
		for k := 0; k <= n; k++ {
			v := a + float64(k)*step
			out = append(out, &v)
		}
	}
	return out
}

func TestExpandValues(t *testing.T) {
	got := []string{}
	for _, v := range expandValues(t, "_x2 0 1+2x2 5x1 _") {
		if v == nil {
			got = append(got, "_")
		} else {
			got = append(got, strconv.FormatFloat(*v, 'g', -1, 64))
		}
	}
	if s := strings.Join(got, " "); s != "_ _ 0 1 3 5 5 5 _" {
		t.Fatalf("expandValues: %s", s)
	}
	for values, want := range map[string]bool{"0 0 1x5": true, "_ _ 1+1x3": true, "0 1+5x3": true, "1x5": false, "0 0 2": false, "0x5": false} {
		if got := firstEventSeries(t, values); got != want {
			t.Errorf("firstEventSeries(%q) = %v", values, got)
		}
	}
}
