package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.yaml.in/yaml/v3"
)

const root = "../../"

// processorMetricRE finds the metric names declared in processor/metrics.go.
var processorMetricRE = regexp.MustCompile(`Name:\s*"(triggerd_[a-z0-9_]+)"`)

// storeMetricRE finds the store metric names declared in
// processor/storemetrics.go (without their triggerd_store_ prefix).
var storeMetricRE = regexp.MustCompile(`storeDesc\("([a-z0-9_]+)"`)

// processorMetrics returns the names declared in processor/metrics.go.
func processorMetrics(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(root + "processor/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range processorMetricRE.FindAllSubmatch(src, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in processor/metrics.go (%v): has the declaration style changed?", len(names), names)
	}
	return names
}

// knownSeries returns every series name a scrape of triggerd can have:
// the processor's metrics (histograms with _bucket, _sum, _count), those of
// kprom as the processor configures it (namespace "triggerd", found by
// running a client with its hooks against kfake), the state store's
// (declared in processor/storemetrics.go), the Go and process collectors that
// cmd/triggerd registers, and Prometheus's own "up".
func knownSeries(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"up": true}
	src, _ := os.ReadFile(root + "processor/metrics.go")
	for _, n := range processorMetrics(t) {
		known[n] = true
		// The histogram suffixes; harmless for other types, whose
		// suffixed names no dashboard would use.
		if bytes.Contains(src, []byte(`"`+n+`"`)) && strings.HasSuffix(n, "_seconds") {
			known[n+"_bucket"], known[n+"_sum"], known[n+"_count"] = true, true, true
		}
	}
	store, err := os.ReadFile(root + "processor/storemetrics.go")
	if err != nil {
		t.Fatal(err)
	}
	storeNames := storeMetricRE.FindAllSubmatch(store, -1)
	if len(storeNames) < 10 {
		t.Fatalf("found only %d store metric names in processor/storemetrics.go: has the declaration style changed?", len(storeNames))
	}
	for _, m := range storeNames {
		known["triggerd_store_"+string(m[1])] = true
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := kprom.NewMetrics("triggerd", kprom.Registerer(reg))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.WithHooks(m), kgo.ConsumeTopics("t"),
		kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for got := 0; got == 0; {
		f := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("kfake fetch: %v", err)
		}
		got = f.NumRecords()
	}
	// A second client dials a closed port, so that kprom's error series
	// (created on the first error) exist too.
	reg2 := prometheus.NewRegistry()
	cl2, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.WithHooks(kprom.NewMetrics("triggerd", kprom.Registerer(reg2))),
		kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	_ = cl2.Ping(pctx) // fails: nothing listens there
	pcancel()
	defer cl2.Close() // after Gather: closing a client unregisters its kprom series
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams2, err := reg2.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams = append(fams, fams2...)
	kp := 0
	for _, f := range fams {
		n := f.GetName()
		known[n] = true
		if strings.HasPrefix(n, "triggerd_") {
			kp++
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			known[n+"_bucket"], known[n+"_sum"], known[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			known[n+"_sum"], known[n+"_count"] = true, true
		}
	}
	if kp < 5 || !known["triggerd_fetch_bytes_total"] {
		t.Fatalf("kprom exported %d triggerd_ metrics, expected its fetch/produce/connection counters", kp)
	}
	return known
}

// seriesRE finds metric names in a PromQL expression: the identifiers with
// one of the prefixes the project's scrapes have, or "up" before a selector.
var seriesRE = regexp.MustCompile(`\b((?:triggerd|go|process)_[a-zA-Z0-9_]+|up)\b\s*(\{|\[|\)|,|$| )`)

func seriesIn(expr string) []string {
	// Label values and legend templates are not metric names.
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	var out []string
	for _, m := range seriesRE.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestSeriesIn(t *testing.T) {
	got := seriesIn(`sum by (le) (rate(triggerd_cycle_seconds_bucket{instance=~"triggerd_x"}[5m])) / up == 0 and go_goroutines`)
	want := []string{"triggerd_cycle_seconds_bucket", "up", "go_goroutines"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("seriesIn: got %v, want %v", got, want)
	}
}

// dashboardExprs returns every PromQL expression of the dashboard: panel
// targets (rows nested or not) and query variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(root + "deploy/grafana/triggerd.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Panels     []map[string]any
		Templating struct {
			List []map[string]any `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("deploy/grafana/triggerd.json is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels")
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				if q, ok := x.(map[string]any); ok && k == "query" {
					if s, ok := q["query"].(string); ok {
						exprs = append(exprs, s)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	walk(raw)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has only %d expressions", len(exprs))
	}
	return exprs
}

// alertRules returns the alert rules of deploy/prometheus/alerts.yaml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	data, err := os.ReadFile(root + "deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestMetricNames: every metric the dashboard and the alerts query exists,
// and every processor metric is on the dashboard and in the operations
// manual's metrics table.
func TestMetricNames(t *testing.T) {
	known := knownSeries(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names := seriesIn(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] = true
			if !known[n] {
				t.Errorf("%s: metric %s does not exist in the code (in %q)", where, n, expr)
			}
		}
	}
	for _, e := range dashboardExprs(t) {
		check("dashboard", e)
	}
	dashUsed := used
	used = map[string]bool{}
	for _, r := range alertRules(t) {
		check("alert "+r.Alert, r.Expr)
	}
	manual, err := os.ReadFile(root + "docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range processorMetrics(t) {
		if !dashUsed[n] {
			t.Errorf("processor metric %s is not on the dashboard", n)
		}
		if !bytes.Contains(manual, []byte("`"+n)) {
			t.Errorf("processor metric %s is not documented in docs/operations.md", n)
		}
	}
}

// TestAlertRulesDocumented: each alert has a severity, a summary and a
// runbook-style description, and the alerts the operations guide promises
// exist.
func TestAlertRulesDocumented(t *testing.T) {
	rules := alertRules(t)
	byName := map[string]alertRule{}
	for _, r := range rules {
		byName[r.Alert] = r
		if r.Labels["severity"] == "" {
			t.Errorf("alert %s has no severity label", r.Alert)
		}
		if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 150 {
			t.Errorf("alert %s needs a summary and a runbook description (what it means, what to check)", r.Alert)
		}
	}
	for metric, what := range map[string]string{
		"triggerd_watermark_lag_seconds":                  "consumer lag",
		"triggerd_restore_in_progress":                    "restore too long",
		"triggerd_timers_fire_lag_seconds":                "timer fire lag",
		"triggerd_input_dead_lettered_total":              "dead-letter rate",
		"triggerd_input_lost_records_total":               "lost input records",
		"triggerd_kafka_session_restarts_total":           "Kafka session restarts",
		"triggerd_rules_reloads_total":                    "rules reload rejected",
		"triggerd_transactions_total":                     "processor errors",
		`up{job=~".*triggerd.*"}`:                         "processor down",
		`process_start_time_seconds{job=~".*triggerd.*"}`: "processor restarting (a crash loop, a fenced instance)",
	} {
		found := false
		for _, r := range rules {
			found = found || strings.Contains(r.Expr, metric)
		}
		if !found {
			t.Errorf("no alert on %s (%s)", what, metric)
		}
	}
}

// exampleKeys returns the setting paths of deploy/config.example.yaml
// ("kafka.sasl.password"), which lists every setting.
func exampleKeys(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(root + "deploy/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if mm, ok := v.(map[string]any); ok {
			for k, x := range mm {
				walk(prefix+k+".", x)
			}
			return
		}
		keys[strings.TrimSuffix(prefix, ".")] = true
	}
	walk("", m)
	return keys
}

// TestRenderedChart checks the manifests that check.sh rendered from the
// chart (default values and every option on) against the configuration:
// the config file holds only known settings, every TRIGGERD_ variable
// names one, and the pod gets its instance ID from its name.
func TestRenderedChart(t *testing.T) {
	files := strings.Fields(os.Getenv("DEPLOY_RENDERED"))
	if len(files) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("DEPLOY_RENDERED is empty: run make test-deploy, which renders the chart first")
		}
		t.Skip("DEPLOY_RENDERED is empty: make test-deploy renders the chart and sets it")
	}
	keys := exampleKeys(t)
	envName := func(path string) string { return "TRIGGERD_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_")) }
	envs := map[string]bool{}
	for k := range keys {
		envs[envName(k)] = true
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		kinds := map[string]int{}
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if obj == nil {
				continue
			}
			kind, _ := obj["kind"].(string)
			kinds[kind]++
			switch kind {
			case "ConfigMap":
				cfgText, _ := dig(obj, "data", "config.yaml").(string)
				var cfg map[string]any
				if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
					t.Fatalf("%s: config.yaml: %v", file, err)
				}
				var walk func(prefix string, v any)
				walk = func(prefix string, v any) {
					if mm, ok := v.(map[string]any); ok {
						for k, x := range mm {
							walk(prefix+k+".", x)
						}
						return
					}
					if p := strings.TrimSuffix(prefix, "."); !keys[p] {
						t.Errorf("%s: config.yaml sets %s, which is no setting", file, p)
					}
				}
				walk("", cfg)
			case "StatefulSet":
				ctrs, _ := dig(obj, "spec", "template", "spec", "containers").([]any)
				if len(ctrs) != 1 {
					t.Fatalf("%s: %d containers", file, len(ctrs))
				}
				env, _ := dig(ctrs[0], "env").([]any)
				seen := map[string]any{}
				for _, e := range env {
					name, _ := dig(e, "name").(string)
					seen[name] = e
					if strings.HasPrefix(name, "TRIGGERD_") && !envs[name] {
						t.Errorf("%s: environment variable %s names no setting (the processor would refuse to start)", file, name)
					}
				}
				if dig(seen["TRIGGERD_KAFKA_INSTANCE_ID"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name" {
					t.Errorf("%s: TRIGGERD_KAFKA_INSTANCE_ID is not the pod name (static membership)", file)
				}
				if dig(ctrs[0], "readinessProbe", "httpGet", "path") != "/readyz" || dig(ctrs[0], "livenessProbe", "httpGet", "path") != "/healthz" {
					t.Errorf("%s: probes are not /readyz (readiness) and /healthz (liveness)", file)
				}
				if len(dig(obj, "spec", "volumeClaimTemplates").([]any)) != 1 {
					t.Errorf("%s: want one volume claim template (the state dir)", file)
				}
			}
		}
		for _, k := range []string{"StatefulSet", "ConfigMap", "Service", "PodDisruptionBudget"} {
			if kinds[k] == 0 {
				t.Errorf("%s: no %s rendered", file, k)
			}
		}
		var ks []string
		for k, n := range kinds {
			ks = append(ks, k+"="+strings.Repeat("I", n))
		}
		sort.Strings(ks)
		t.Logf("%s: %v", file, ks)
	}
}

// dig follows map keys into v; nil when one is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestDockerfileStatic builds the binary the way deploy/Dockerfile does
// (no Docker here) and checks it is static: no ELF interpreter, no dynamic
// section, so it runs on a distroless/static base. It also checks that the
// Dockerfile keeps the flags this depends on and runs as non-root.
func TestDockerfileStatic(t *testing.T) {
	df, err := os.ReadFile(root + "deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-tags timetzdata", "USER 65532", "distroless/static", "./cmd/triggerd"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("deploy/Dockerfile lost %q", want)
		}
	}
	bin := t.TempDir() + "/triggerd"
	// Without -trimpath and -ldflags, which do not change static linking
	// but would make a cold build cache rebuild every package.
	cmd := exec.Command("go", "build", "-tags", "timetzdata", "-o", bin, "./cmd/triggerd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is not static: it has a %v program header", p.Type)
		}
	}
}
