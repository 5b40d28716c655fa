package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// scramFile is where test/kafka/broker.sh writes the settings of its
// SASL_SSL listener (TLS, SCRAM-SHA-512), relative to this package.
const scramFile = "../kafka/.cache/run/scram"

// scramListener is the test broker's SCRAM listener.
type scramListener struct {
	brokers   []string
	mechanism string
	user      string
	password  string
	ca        string // the test CA's certificate (PEM) that signed the broker's
}

// scramBroker returns the SCRAM listener of the real broker that
// TRIGGERD_KAFKA_BROKERS names. On kfake (no real broker) the test is
// skipped: these tests are about the real broker's SASL implementation, and
// make test runs them again on the real broker. With a real broker but no
// SCRAM settings for it, the test fails under CI=true and is skipped, with
// the reason, elsewhere (a broker started by hand from an older script).
func scramBroker(t *testing.T) scramListener {
	t.Helper()
	plain := os.Getenv("TRIGGERD_KAFKA_BROKERS")
	if plain == "" {
		t.Skip("SASL/SCRAM runs against the real broker only (TRIGGERD_KAFKA_BROKERS unset: kfake); make test-kafka runs it")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("no SCRAM listener for the broker at %s: "+format, append([]any{plain}, args...)...)
		}
		t.Skipf("no SCRAM listener for the broker at %s: "+format, append([]any{plain}, args...)...)
	}
	f, err := os.Open(scramFile)
	if err != nil {
		missing("%v (start the broker with test/kafka/broker.sh start)", err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		missing("reading %s: %v", scramFile, err)
	}
	if kv["KAFKA_PLAINTEXT_BROKERS"] != plain {
		abs, _ := filepath.Abs(scramFile)
		missing("%s belongs to the broker at %q, not this one", abs, kv["KAFKA_PLAINTEXT_BROKERS"])
	}
	l := scramListener{brokers: strings.Split(kv["KAFKA_SCRAM_BROKERS"], ","), mechanism: kv["KAFKA_SCRAM_MECHANISM"],
		user: kv["KAFKA_SCRAM_USER"], password: kv["KAFKA_SCRAM_PASSWORD"], ca: kv["KAFKA_SCRAM_CA"]}
	if kv["KAFKA_SCRAM_BROKERS"] == "" || l.mechanism == "" || l.user == "" || l.password == "" || l.ca == "" {
		missing("%s is incomplete: %v", scramFile, kv)
	}
	t.Logf("SCRAM listener at %s (%s, user %s)", kv["KAFKA_SCRAM_BROKERS"], l.mechanism, l.user)
	return l
}

// TestSASLSCRAM runs the processor against the broker's SASL_SSL listener
// (TLS, trusting the test CA) with SCRAM-SHA-512 credentials, as kafka.tls
// and kafka.sasl configure it:
// every request it makes (topic checks and creation, the group, the
// transactions, the changelog) goes through the authenticated listener. The
// test's own producer and reader use the PLAINTEXT listener. A cart left
// alone must come out as a committed stage-1 trigger, and a bought cart
// must not.
func TestSASLSCRAM(t *testing.T) {
	l := scramBroker(t)
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	cfg.Brokers = l.brokers
	cfg.SASL = processor.SASLConfig{Mechanism: l.mechanism, User: l.user, Password: l.password}
	cfg.TLS = processor.TLSConfig{Enabled: true, CAFile: l.ca}
	proc := harness.RunProcessor(t, cfg, harness.CartRules(t), nil)
	p := harness.NewProducer(t, c, cfg, nil)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)

	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	evs := []schemas.Event{
		click("s1", "scram-abandoner", schemas.AddToCart, m(0), "p1"),
		click("s2", "scram-buyer", schemas.AddToCart, m(0), "p1"),
		purchase("s3", "scram-buyer", m(20)),
	}
	p.Send(parts, evs...)
	harness.WaitEvents(t, proc, int64(len(evs)))
	p.Tick(parts, m(120))
	harness.WaitEvents(t, proc, int64(len(evs)+3*parts))
	got := reader.Read(1, time.Second, 60*time.Second)
	var have []string
	for _, tr := range got {
		have = append(have, tr.Customer+"/"+tr.Kind)
	}
	if len(got) != 1 || got[0].Customer != "scram-abandoner" || got[0].Kind != "cart_abandoned" || got[0].Stage != 1 {
		t.Fatalf("triggers over SASL/SCRAM: got %v, want [scram-abandoner/cart_abandoned stage 1]", have)
	}
}

// TestSASLSCRAMWrongPassword starts the processor with a wrong password:
// it must stop with an error that says authentication failed, not retry
// silently or hang.
func TestSASLSCRAMWrongPassword(t *testing.T) {
	l := scramBroker(t)
	cfg := harness.NewCluster(t).Topics(t, 1)
	cfg.Brokers = l.brokers
	cfg.SASL = processor.SASLConfig{Mechanism: l.mechanism, User: l.user, Password: l.password + "-wrong"}
	cfg.TLS = processor.TLSConfig{Enabled: true, CAFile: l.ca}
	err := runUntilStopped(t, cfg)
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "authentication") && !strings.Contains(msg, "sasl") {
		t.Fatalf("error for a wrong SCRAM password does not name the authentication failure: %v", err)
	}
	t.Logf("wrong password: %v", err)
}

// TestTLSUntrustedBroker connects with TLS but without the CA that signed
// the broker's certificate: the processor must refuse the broker (never
// fall back to trusting it) and stop with an error that says why.
func TestTLSUntrustedBroker(t *testing.T) {
	l := scramBroker(t)
	cfg := harness.NewCluster(t).Topics(t, 1)
	cfg.Brokers = l.brokers
	cfg.SASL = processor.SASLConfig{Mechanism: l.mechanism, User: l.user, Password: l.password}
	cfg.TLS = processor.TLSConfig{Enabled: true} // the system's roots only
	err := runUntilStopped(t, cfg)
	if msg := err.Error(); !strings.Contains(msg, "certificate") {
		t.Fatalf("error for an untrusted broker certificate does not say so: %v", err)
	}
	t.Logf("untrusted broker: %v", err)
}

// runUntilStopped runs a processor that must stop by itself within 90 s
// with an error other than a timeout, and returns that error.
func runUntilStopped(t *testing.T, cfg processor.Config) error {
	t.Helper()
	return start(t, cfg, memStore(t)).stopped(t, 90*time.Second)
}
