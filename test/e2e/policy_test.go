package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// policyRules: two marketing rules on email (promo defers in quiet hours,
// flash is dropped), a risk rule (exempt), consent by opt-in, email 2 per 7
// days, quiet hours 21:00-08:00 UTC.
const policyRules = `defaults: {time_zone: UTC, channel: email}
rules:
  - {id: promo, version: 1, family: behavioral, on: [promo]}
  - {id: flash, version: 1, family: behavioral, on: [flash], contact: {quiet_hours: drop}}
  - {id: fraud, version: 1, family: anomaly, on: [purchase], when: "event.amount > 100000", channel: risk, priority: 100}
policy:
  exempt: {families: [anomaly]}
  consent: opt_in
  quiet_hours: {from: "21:00", to: "08:00"}
  caps:
    - {name: email_7d, channel: email, max: 2, window: 7d}
`

// TestContactPolicy drives events through the processor with a contact
// policy and checks both topics a downstream consumer reads: the triggers
// that went out, and on the suppressions topic every trigger that did not,
// with its reason and policy; a deferred trigger appears there once as
// deferred and comes out on the triggers topic when its durable timer
// releases it at 08:00.
func TestContactPolicy(t *testing.T) {
	t.Run("json", func(t *testing.T) { testContactPolicy(t, schemas.FormatJSON) })
	t.Run("avro", func(t *testing.T) { testContactPolicy(t, schemas.FormatAvro) })
}

func testContactPolicy(t *testing.T, f schemas.Format) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	var reg *sr.Client
	if f == schemas.FormatAvro {
		fake := srfake.New()
		t.Cleanup(fake.Close)
		var err error
		if reg, err = sr.NewClient(sr.URLs(fake.URL())); err != nil {
			t.Fatal(err)
		}
		cfg.Registry.URL = fake.URL()
	}
	cfg.Encodings = processor.Encodings{Clickstream: f, Transactions: f, Profiles: f, Triggers: f}
	rs, err := rules.Parse("policy.yaml", []byte(policyRules))
	if err != nil {
		t.Fatal(err)
	}
	proc := harness.RunProcessor(t, cfg, rs, reg)
	p := harness.NewProducer(t, c, cfg, reg)
	triggers := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, f, reg)

	noon := time.Now().UTC().Truncate(24 * time.Hour).Add(-72*time.Hour + 12*time.Hour)
	at := func(d time.Duration) time.Time { return noon.Add(d) }
	optIn := func(id, cust string, when time.Time) schemas.Event {
		return schemas.Event{Source: schemas.SourceProfile, ID: id, Customer: schemas.CustomerID(cust), Type: schemas.ProfileUpdate,
			Time: when, Profile: schemas.Profile{OptIns: map[schemas.Channel]bool{schemas.ChannelEmail: true}}}
	}
	ev := func(id, cust string, typ schemas.EventType, when time.Time) schemas.Event {
		return schemas.Event{Source: schemas.SourceClickstream, ID: id, Customer: schemas.CustomerID(cust), Type: typ, Time: when}
	}
	big := purchase("r1", "risky", at(10*time.Hour))
	big.Amount.Minor = 500000
	evs := []schemas.Event{
		// Two emails go out, the third is capped.
		optIn("c0", "capped", at(-time.Minute)),
		ev("c1", "capped", "promo", at(time.Minute)),
		ev("c2", "capped", "promo", at(2*time.Minute)),
		ev("c3", "capped", "promo", at(3*time.Minute)),
		// No opt-in: never sent.
		ev("n1", "unconsented", "promo", at(time.Minute)),
		// 22:00: promo is deferred to 08:00, flash is dropped.
		optIn("q0", "night", at(-time.Minute)),
		ev("q1", "night", "promo", at(10*time.Hour)),
		ev("q2", "night", "flash", at(10*time.Hour)),
		// Risk at 22:00, without opt-in: exempt, out at once.
		big,
	}
	p.Send(parts, evs...)
	p.Tick(parts, at(11*time.Hour))
	harness.WaitEvents(t, proc, int64(len(evs)+3*parts))

	got := triggers.Read(3, time.Second, 60*time.Second)
	checkKinds(t, "before 08:00", got, []string{"capped/promo", "capped/promo", "risky/fraud"})

	// 08:30 the next morning: the deferred promo is released.
	p.Tick(parts, at(20*time.Hour+30*time.Minute))
	harness.WaitEvents(t, proc, int64(len(evs)+6*parts))
	got2 := triggers.Read(1, time.Second, 60*time.Second)
	checkKinds(t, "after 08:00", got2, []string{"night/promo"})
	if len(got2) == 1 && !got2[0].Due.Equal(at(10*time.Hour)) {
		t.Errorf("released promo due %s, want its original due time %s", got2[0].Due, at(10*time.Hour))
	}

	sups := readSuppressions(t, c, cfg.SuppressionsTopic(), f, reg, 4)
	var have []string
	for _, s := range sups {
		line := fmt.Sprintf("%s/%s %s %s %s", s.Trigger.Customer, s.Trigger.Rule, s.Action, s.Reason, s.Policy)
		if s.Action == schemas.ActionDeferred {
			line += " until=" + s.DeferredTo.Sub(noon).String()
		}
		have = append(have, line)
	}
	slices.Sort(have)
	want := []string{
		"capped/promo suppressed cap email_7d",
		"night/flash suppressed quiet_hours quiet_hours",
		"night/promo deferred quiet_hours quiet_hours until=20h0m0s",
		"unconsented/promo suppressed no_consent consent",
	}
	if !slices.Equal(have, want) {
		t.Errorf("suppressions:\n got %s\nwant %s", strings.Join(have, "\n     "), strings.Join(want, "\n     "))
	}
	s := proc.Suppressions()
	if s[rules.ReasonCap] != 1 || s[rules.ReasonNoConsent] != 1 || s[rules.ReasonQuietHours] != 1 || s["deferred"] != 1 {
		t.Errorf("processor's suppression counts: %v", s)
	}
}

func checkKinds(t *testing.T, when string, got []harness.FiredTrigger, want []string) {
	t.Helper()
	var have []string
	for _, tr := range got {
		have = append(have, tr.Customer+"/"+tr.Kind)
		if tr.HeaderID != tr.ID {
			t.Errorf("trigger header ID %q differs from the value's ID %q", tr.HeaderID, tr.ID)
		}
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("%s: triggers %v, want %v", when, have, want)
	}
}

// readSuppressions reads the committed suppression records until want have
// arrived and a second passed with no more, checking the key and headers
// a consumer relies on.
func readSuppressions(t *testing.T, c *harness.Cluster, topic string, f schemas.Format, reg *sr.Client, want int) []schemas.Suppression {
	t.Helper()
	dec, err := schemas.NewSuppressionDecoder(f, reg)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []schemas.Suppression
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Second
		if len(out) < want {
			wait = time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fetches := cl.PollFetches(ctx)
		cancel()
		recs := fetches.Records()
		for _, rec := range recs {
			var s schemas.Suppression
			if err := dec.Decode(context.Background(), rec.Value, &s); err != nil {
				t.Fatalf("undecodable suppression: %v", err)
			}
			if string(rec.Key) != string(s.Trigger.Customer) {
				t.Errorf("suppression keyed %q, want the customer %q", rec.Key, s.Trigger.Customer)
			}
			h := map[string]string{}
			for _, hd := range rec.Headers {
				h[hd.Key] = string(hd.Value)
			}
			if h[processor.HeaderReason] != s.Reason || h[processor.HeaderTriggerID] != s.Trigger.ID || h[processor.HeaderAction] != string(s.Action) {
				t.Errorf("suppression headers %v do not match the value %+v", h, s)
			}
			out = append(out, s)
		}
		if len(recs) == 0 && len(out) >= want {
			break
		}
	}
	return out
}
