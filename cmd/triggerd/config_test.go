package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig("../../deploy/config.example.yaml", nil)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	rs, err := cfg.Rules.load()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules()) < 17 {
		t.Errorf("example config loads %d rules, want the example's", len(rs.Rules()))
	}
}

// TestConfigReportsEveryProblem checks that a bad file and bad environment
// are reported all at once, each named.
func TestConfigReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `kafka:
  brokers: [nocolon]
  group: ""
  encodings:
    triggers: avro
  sasl:
    mechanism: KERBEROS
  tick: 0s
  fetch_partition_bytes: 1000
  compression: brotli
rules:
  file: RULESFILE
  poll: -1s
log:
  level: loud
`
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - id: x\n    version: 1\n    family: anomaly\n    channel: risk\n    on: [purchase]\n    when: event.amout > 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad = strings.Replace(bad, "RULESFILE", rulesFile, 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path, []string{"TRIGGERD_KAFKA_POLL_RECORDS=many", "TRIGGERD_NO_SUCH=1", "HOME=/"})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{
		`kafka.brokers[0]: "nocolon" is not host:port`,
		"kafka.group: empty",
		"kafka.registry.url: required",
		`kafka.sasl.mechanism: "KERBEROS"`,
		"kafka.tick: must be > 0",
		"kafka.fetch_partition_bytes: 1000, must be at least 1024",
		`kafka.compression: "brotli" is not snappy, lz4, zstd, gzip or none`,
		"rules.poll: must be >= 0",
		"rules.yaml:7:16: when: undeclared reference to 'event.amout'",
		`log.level: "loud"`,
		`kafka.poll_records: TRIGGERD_KAFKA_POLL_RECORDS="many" is not an integer`,
		"TRIGGERD_NO_SUCH: this environment variable names no setting",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

// settingPaths lists the YAML path of every setting of Config.
func settingPaths() []string {
	var paths []string
	cfg := defaultConfig()
	walkSettings(reflect.ValueOf(&cfg).Elem(), "", func(path string, _ reflect.Value) { paths = append(paths, path) })
	return paths
}

// TestConfigProblemsNamePaths: a file with a misspelt key, a duration
// without its unit, addresses that are not host:port, a key set twice and
// Avro suppressions without a registry is refused with one error whose
// every line starts with the YAML path of the setting at fault (not a Go
// type), says the line, and suggests the setting meant.
func TestConfigProblemsNamePaths(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `kafka:
  brokers: [broker-1:9092, broker-2]
  topics:
    clikstream: clicks
  encodings:
    suppressions: avro
  tick: 5
  replication_factor: 40000
  lateness: [1s]
  sasl: PLAIN
ops:
  addr: nonsense
admin:
  addr: localhost
  token: t
  token: u
log:
  levle: debug
  level: debug
stat:
  dir: /tmp
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path, nil)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`kafka.brokers[1]: "broker-2" is not host:port`,
		"kafka.topics.clikstream: line 4: unknown setting; did you mean kafka.topics.clickstream?",
		"kafka.registry.url: required when an encoding is avro",
		"kafka.tick: line 7: 5 is not a duration with a unit, e.g. 250ms, 30s, 5m or 24h",
		"kafka.replication_factor: line 8: 40000 is not an integer from -32768 to 32767",
		"kafka.lateness: line 9: a list is not a duration",
		`kafka.sasl: line 10: "PLAIN" is not a section of settings (mechanism, password, user)`,
		`ops.addr: "nonsense" is not host:port`,
		`admin.addr: "localhost" is not host:port`,
		"admin.token: line 16: set again (first at line 15)",
		"log.levle: line 18: unknown setting; did you mean log.level?",
		"stat: line 20: unknown setting; did you mean state?",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%v", want, msg)
		}
	}
	for _, bad := range []string{"processor.", "time.Duration", "not found in type"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error names Go types (%q):\n%v", bad, msg)
		}
	}
	// Every line names a setting (or a section, or an unknown key under
	// one) by its YAML path.
	known := map[string]bool{"kafka.sasl": true, "kafka.topics.clikstream": true, "log.levle": true, "stat": true}
	for _, p := range settingPaths() {
		known[p] = true
	}
	for _, line := range strings.Split(msg, "\n") {
		p, _, _ := strings.Cut(line, ": ")
		if i := strings.IndexByte(p, '['); i >= 0 {
			p = p[:i]
		}
		if !known[p] {
			t.Errorf("line %q does not start with a setting's path", line)
		}
	}
}

// A good address passes: host:port, a listen address without its host,
// port 0 to listen on any port, an IPv6 literal.
func TestConfigAddresses(t *testing.T) {
	_, err := loadConfig("", []string{
		"TRIGGERD_KAFKA_BROKERS=[::1]:9092,kafka-0.kafka:9093",
		"TRIGGERD_OPS_ADDR=:9464", "TRIGGERD_ADMIN_ADDR=127.0.0.1:0", "TRIGGERD_ADMIN_TOKEN=t",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig("", []string{"TRIGGERD_KAFKA_BROKERS=kafka:0,:9092", "TRIGGERD_OPS_ADDR=127.0.0.1:http"})
	for _, want := range []string{
		`kafka.brokers[0]: "kafka:0" is not host:port: port 0`,
		`kafka.brokers[1]: ":9092" is not host:port: the host is missing`,
		`ops.addr: "127.0.0.1:http" is not host:port: port "http" is not a number`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// A misspelt TRIGGERD_ variable stops the start, and the error names it
// and the variable meant.
func TestConfigUnknownEnvNamesClosest(t *testing.T) {
	_, err := loadConfig("", []string{"TRIGGERD_KAFKA_BROKER=b:9092", "TRIGGERD_STATE_DIRR=/data"})
	for _, want := range []string{
		"TRIGGERD_KAFKA_BROKER: this environment variable names no setting, and an unknown TRIGGERD_ variable stops the start; the closest is TRIGGERD_KAFKA_BROKERS (kafka.brokers)",
		"TRIGGERD_STATE_DIRR: this environment variable names no setting, and an unknown TRIGGERD_ variable stops the start; the closest is TRIGGERD_STATE_DIR (state.dir)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if _, err := loadConfig("", []string{"TRIGGERD_CONFIG=x.yaml", failpointsEnv + "=", traceEnv + "=c-1"}); err != nil {
		t.Errorf("the variables that name no setting on purpose are refused: %v", err)
	}
}

// Suppressions in Avro alone need a schema registry: validation asks for
// its URL, and the start makes a registry client for it.
func TestConfigSuppressionsAvroNeedRegistry(t *testing.T) {
	env := []string{"TRIGGERD_KAFKA_ENCODINGS_SUPPRESSIONS=avro"}
	_, err := loadConfig("", env)
	if err == nil || !strings.Contains(err.Error(), "kafka.registry.url: required when an encoding is avro") {
		t.Fatalf("suppressions in avro without a registry: %v", err)
	}
	cfg, err := loadConfig("", append(env, "TRIGGERD_KAFKA_REGISTRY_URL=http://registry:8081"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Kafka.UsesAvro() {
		t.Error("UsesAvro is false with suppressions in avro")
	}
}

// TestExampleConfigShowsEverySetting keeps deploy/config.example.yaml and
// the configuration in step, as its header promises: it sets every
// setting, and to its default.
func TestExampleConfigShowsEverySetting(t *testing.T) {
	const file = "../../deploy/config.example.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			inFile[prefix] = true
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], joinPath(prefix, n.Content[i].Value))
		}
	}
	walk(doc.Content[0], "")
	paths := settingPaths()
	if len(paths) < 50 {
		t.Fatalf("only %d settings found by reflection", len(paths))
	}
	for _, p := range paths {
		if !inFile[p] {
			t.Errorf("%s does not show %s", file, p)
		}
	}
	got, err := loadConfig(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	var diff func(g, w reflect.Value, prefix string)
	diff = func(g, w reflect.Value, prefix string) {
		for i := 0; i < g.NumField(); i++ {
			name := yamlName(g.Type().Field(i))
			if name == "" {
				continue
			}
			p := joinPath(prefix, name)
			if isSection(g.Field(i).Type()) {
				diff(g.Field(i), w.Field(i), p)
			} else if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
				t.Errorf("%s sets %s to %v, the default is %v", file, p, g.Field(i).Interface(), w.Field(i).Interface())
			}
		}
	}
	diff(g, w, "")
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := loadConfig("", []string{
		"TRIGGERD_KAFKA_BROKERS=a:1, b:2",
		"TRIGGERD_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
		"TRIGGERD_KAFKA_SASL_USER=u",
		"TRIGGERD_KAFKA_SASL_PASSWORD=p",
		"TRIGGERD_RULES_FILE=../../rules/example/rules.yaml",
		"TRIGGERD_KAFKA_IDLE_ADVANCE=false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "a:1,b:2" {
		t.Errorf("brokers = %q", got)
	}
	if cfg.Kafka.SASL.Password != "p" || cfg.Kafka.SASL.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("sasl = %+v", cfg.Kafka.SASL)
	}
	if cfg.Rules.File != "../../rules/example/rules.yaml" {
		t.Errorf("rules.file = %q", cfg.Rules.File)
	}
	if cfg.Kafka.IdleAdvance {
		t.Error("idle_advance not overridden")
	}
}

// An admin API with an address but no token would serve customer data to
// anyone: the configuration is refused.
func TestAdminConfigNeedsToken(t *testing.T) {
	_, err := loadConfig("", []string{"TRIGGERD_ADMIN_ADDR=127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "admin.token: required when admin.addr is set") {
		t.Fatalf("admin without a token: %v", err)
	}
	cfg, err := loadConfig("", []string{"TRIGGERD_ADMIN_ADDR=127.0.0.1:9465", "TRIGGERD_ADMIN_TOKEN=s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Admin.advertised(); got != "http://127.0.0.1:9465" {
		t.Fatalf("advertised %q", got)
	}
	if cfg.Admin.AllowWrites {
		t.Fatal("writes allowed by default")
	}
}
