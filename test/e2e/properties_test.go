package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestPropertiesPerRecord: a worker decodes every record into one Event,
// refilling the last record's properties map (schemas.Reuse). A rule on a
// property must see each record's own properties: it fires for the records
// that carry campaign=spring, and for none of those in between that carry no
// properties, other values, or the value under another name, on either
// input. All records go to one partition, so one worker decodes them all,
// in this order, in Avro.
func TestPropertiesPerRecord(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 1
	cfg := c.Topics(t, parts)
	fake := srfake.New()
	t.Cleanup(fake.Close)
	reg, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registry.URL = fake.URL()
	f := schemas.FormatAvro
	cfg.Encodings = processor.Encodings{Clickstream: f, Transactions: f, Profiles: f, Triggers: f}
	rs, err := rules.Parse("props.yaml", []byte(`rules:
  - {id: spring, version: 1, family: anomaly, channel: risk, on: [page_view, purchase], when: '"campaign" in event.properties && event.properties["campaign"] == "spring"'}
policy:
  exempt: {families: [anomaly]}
`))
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := harness.StartProcessor(t, cfg, rs, reg, processor.Options{})
	p := harness.NewProducer(t, c, cfg, reg)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, f, reg)

	at := time.Now().UTC().Add(-time.Hour)
	view := func(n int, props map[string]string) schemas.Event {
		ev := click(fmt.Sprintf("e%d", n), fmt.Sprintf("c%d", n), schemas.PageView, at.Add(time.Duration(n)*time.Second), "p1")
		ev.Properties = props
		return ev
	}
	buy := func(n int, props map[string]string) schemas.Event {
		ev := purchase(fmt.Sprintf("e%d", n), fmt.Sprintf("c%d", n), at.Add(time.Duration(n)*time.Second))
		ev.Properties = props
		return ev
	}
	evs := []schemas.Event{
		view(1, map[string]string{"campaign": "spring", "ab": "b"}), // fires
		view(2, nil), // no properties: nothing
		buy(3, map[string]string{"campaign": "summer"}),     // another value: nothing
		view(4, map[string]string{"ab": "spring"}),          // the value under another name: nothing
		buy(5, map[string]string{"campaign": "spring"}),     // fires
		view(6, map[string]string{}),                        // empty: nothing
		buy(7, nil),                                         // nothing
		view(8, map[string]string{"campaign": "spring "}),   // not the same string: nothing
		view(9, map[string]string{"campaign": "spring"}),    // fires
		view(10, map[string]string{"utm": "x", "ref": "y"}), // nothing
	}
	p.Send(parts, evs...)
	// Event time moves on every input (the tests' processors do not
	// advance idle inputs): the records are released in order.
	p.Tick(parts, at.Add(time.Minute))
	harness.WaitEvents(t, proc, int64(len(evs)+3*parts))

	got := reader.Read(3, 2*time.Second, 60*time.Second)
	var have []string
	for _, tr := range got {
		have = append(have, string(tr.Customer))
	}
	sort.Strings(have)
	if want := []string{"c1", "c5", "c9"}; fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("triggers for %v, want %v", have, want)
	}
}
