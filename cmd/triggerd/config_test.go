package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig("../../deploy/config.example.yaml", nil)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if got := cfg.Rules.CartAbandonment.Stage1Delay; got != time.Hour {
		t.Errorf("stage1_delay = %s, want 1h", got)
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
rules:
  cart_abandonment:
    stage1_delay: -1h
log:
  level: loud
`
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
		"cart_abandonment.stage1_delay must be > 0",
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
		"TRIGGERD_RULES_CART_ABANDONMENT_STAGE1_DELAY=45m",
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
	if cfg.Rules.CartAbandonment.Stage1Delay != 45*time.Minute {
		t.Errorf("stage1_delay = %s, want 45m", cfg.Rules.CartAbandonment.Stage1Delay)
	}
	if cfg.Kafka.IdleAdvance {
		t.Error("idle_advance not overridden")
	}
}
