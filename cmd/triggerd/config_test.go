package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		`brokers[0]: "nocolon" is not host:port`,
		"group: empty",
		"registry.url: required",
		`sasl.mechanism: "KERBEROS"`,
		"tick: must be > 0",
		"fetch_partition_bytes: 1000, must be at least 1024",
		`compression: "brotli" is not snappy, lz4, zstd, gzip or none`,
		"rules.poll must be >= 0",
		"rules.yaml:7:16: when: undeclared reference to 'event.amout'",
		`log.level "loud"`,
		"TRIGGERD_KAFKA_POLL_RECORDS",
		"TRIGGERD_NO_SUCH names no setting",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
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
	if err == nil || !strings.Contains(err.Error(), "admin.token is required") {
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
