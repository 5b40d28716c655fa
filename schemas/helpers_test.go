package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// newRegistry starts an in-process schema registry for one test.
func newRegistry(tb testing.TB) (*srfake.Registry, *sr.Client) {
	tb.Helper()
	reg := srfake.New()
	tb.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		tb.Fatal(err)
	}
	return reg, cl
}

var sources = []Source{SourceClickstream, SourceTransaction, SourceProfile}

var topics = map[Source]string{
	SourceClickstream: "clickstream",
	SourceTransaction: "transactions",
	SourceProfile:     "profiles",
}

func ms(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// sampleEvent has every field of its source set.
func sampleEvent(src Source) Event {
	switch src {
	case SourceClickstream:
		return Event{
			Source: src, ID: "ev-1", Customer: "c-42", Type: AddToCart, Time: ms("2025-03-01T09:15:00.123Z"),
			SessionID: "s-9", ProductID: "sku-1", Quantity: 2, Price: Money{1999, "EUR"},
			Device: "ios", Country: "DE", Properties: map[string]string{"campaign": "spring", "ab": "b"},
		}
	case SourceTransaction:
		return Event{
			Source: src, ID: "ev-2", Customer: "c-42", Type: Purchase, Time: ms("2025-03-01T10:00:00Z"),
			OrderID: "o-7", Amount: Money{4997, "EUR"},
			Items: []Item{
				{ProductID: "sku-1", Quantity: 2, UnitPrice: Money{1999, "EUR"}},
				{ProductID: "sku-2", Quantity: 1, UnitPrice: Money{999, "EUR"}},
			},
			PaymentMethod: "card", CardFingerprint: "fp-1", Country: "DE",
			CouponID: "SPRING10", CouponExpiry: ms("2025-04-01T00:00:00Z"),
			ServiceDate: Date{2025, time.July, 14}, ContractEnd: Date{2026, time.February, 28},
			Properties: map[string]string{"store": "web"},
		}
	case SourceProfile:
		return Event{
			Source: src, ID: "ev-3", Customer: "c-42", Type: ProfileUpdate, Time: ms("2025-03-01T11:00:00Z"),
			Profile: Profile{
				Birthday: Date{1961, time.December, 31}, SignupDate: Date{2019, time.May, 2},
				TimeZone: "Europe/Berlin", Country: "DE",
				OptIns:      map[Channel]bool{ChannelEmail: true, ChannelSMS: false},
				ContractEnd: Date{2027, time.January, 1},
			},
		}
	}
	panic("no sample for " + src.String())
}

// minimalEvent has only the required fields set. Its clickstream type is
// page_view: a cart event also needs a product (and add_to_cart a quantity).
func minimalEvent(src Source) Event {
	ev := sampleEvent(src)
	if src == SourceClickstream {
		ev.Type = PageView
	}
	return Event{Source: src, ID: ev.ID, Customer: ev.Customer, Type: ev.Type, Time: ev.Time}
}

func sampleTrigger() Trigger {
	return Trigger{
		ID: "c-42/cart_abandoned/3/1/ev-1", Rule: "cart_abandoned", RuleVersion: 3, Kind: "cart_abandoned",
		Stage: 1, Channel: ChannelEmail, Priority: 5, Customer: "c-42",
		FiredAt: ms("2025-03-01T10:15:00.007Z"), DueAt: ms("2025-03-01T10:15:00Z"), ExpiresAt: ms("2025-03-02T10:15:00Z"),
		CausedBy:   []string{"ev-1", "ev-5"},
		Attributes: map[string]string{"subject": "Still thinking it over?", "quote": "\"a\\b\"\n\u2028é\x01"},
		Items:      []Item{{ProductID: "sku-1", Quantity: 2, UnitPrice: Money{1999, "EUR"}}},
		Value:      Money{3998, "EUR"},
	}
}

// normEvent makes equal Events deeply equal: an empty slice or map is nil.
func normEvent(ev Event) Event {
	if len(ev.Items) == 0 {
		ev.Items = nil
	}
	if len(ev.Properties) == 0 {
		ev.Properties = nil
	}
	if len(ev.Profile.OptIns) == 0 {
		ev.Profile.OptIns = nil
	}
	return ev
}

func normTrigger(t Trigger) Trigger {
	if len(t.CausedBy) == 0 {
		t.CausedBy = nil
	}
	if len(t.Items) == 0 {
		t.Items = nil
	}
	if len(t.Attributes) == 0 {
		t.Attributes = nil
	}
	return t
}

func reasonOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

// encoders returns an encoder of every source in format f, registering
// the schemas under the topics' subjects.
func encoders(tb testing.TB, f Format, cl *sr.Client) map[Source]*EventEncoder {
	tb.Helper()
	m := make(map[Source]*EventEncoder)
	for _, src := range sources {
		e, err := NewEventEncoder(context.Background(), src, f, cl, ValueSubject(topics[src]))
		if err != nil {
			tb.Fatal(err)
		}
		m[src] = e
	}
	return m
}

func decoders(tb testing.TB, f Format, cl *sr.Client) map[Source]*Decoder {
	tb.Helper()
	m := make(map[Source]*Decoder)
	for _, src := range sources {
		d, err := NewDecoder(src, f, cl)
		if err != nil {
			tb.Fatal(err)
		}
		m[src] = d
	}
	return m
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
