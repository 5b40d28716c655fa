package state

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

var update = flag.Bool("update", false, "rewrite the newest testdata/customer_*.hex (only when adding fields or a format version)")

// newestCustomerHex is the record written by the current codec, kept so that
// every later release is tested against it. Add a new file (and keep this
// one) when the codec gains fields.
const newestCustomerHex = "customer_v2_late.hex"

// fullCustomer sets every field of schemas.Customer to a non-zero value
// (TestFullCustomerIsFull checks that, so a field added to the type without
// a codec change fails the round-trip test). The cart is long enough that its
// nested encoding needs a 2-byte length.
func fullCustomer() *schemas.Customer {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t.UTC()
	}
	c := &schemas.Customer{
		ID:        "cust-42",
		FirstSeen: at("2023-01-02T03:04:05.123456789Z"),
		LastSeen:  at("2024-06-07T08:09:10.5Z"),
		Cart: schemas.Cart{
			UpdatedAt: at("2024-06-07T08:00:00Z"),
			LastEvent: "evt-9",
		},
		Events:    1234567,
		Purchases: 12,
		Spend: []schemas.Money{
			{Minor: 123456, Currency: "EUR"},
			{Minor: -500, Currency: "USD"},
		},
		Profile: schemas.Profile{
			Birthday:    schemas.Date{Year: 1980, Month: time.February, Day: 29},
			SignupDate:  schemas.Date{Year: 2020, Month: time.March, Day: 1},
			TimeZone:    "Europe/Berlin",
			Country:     "DE",
			OptIns:      map[schemas.Channel]bool{schemas.ChannelEmail: true, schemas.ChannelSMS: false, schemas.ChannelPush: true},
			ContractEnd: schemas.Date{Year: 2026, Month: time.December, Day: 31},
		},
		ProfileUpdatedAt: at("1969-07-20T20:17:40Z"), // before 1970: negative seconds

		Tx:             []schemas.TxStat{{Currency: "EUR", Count: 12, Sum: 123456}, {Currency: "USD", Count: 1, Sum: -500}},
		LastPurchaseAt: at("2024-06-01T12:00:00Z"),
		Seen: []schemas.TypeSeen{
			{Type: schemas.PageView, At: at("2024-06-07T08:09:10.5Z")},
			{Type: "showroom_visit", At: at("2024-05-01T10:00:00Z")},
		},
		Aggregates: []schemas.Aggregate{
			{Name: "card_tx_10m", Entries: []schemas.AggEntry{{At: at("2024-06-07T08:00:00Z"), Value: 1999, Key: "DE"}, {At: at("2024-06-07T08:01:00Z"), Value: -1}}},
			{Name: "views_24h", Entries: []schemas.AggEntry{{At: at("2024-06-07T07:00:00Z"), Key: "product-x"}}},
		},
		RFM: schemas.RFM{R: 5, F: 4, M: 3, Segment: "loyal"},
		Runs: []schemas.Run{
			{Rule: "coupon_reminder", Key: "coupon-1", Occurrence: "coupon-1", Stage: 2, StartedAt: at("2024-06-01T00:00:00Z"), Version: 3,
				Due: []time.Time{at("2024-06-04T00:00:00Z"), at("2024-06-09T00:00:00Z")}, CausedBy: "evt-7"},
			{Rule: "pre_departure", Key: "order-1", Stage: 1, Due: []time.Time{{}, at("2024-07-01T09:00:00Z")}},
		},
		Marks: []schemas.Mark{
			{Rule: "vip_threshold", Key: "EUR", At: at("2024-01-01T00:00:00Z"), Expires: at("2025-01-01T00:00:00Z")},
			{Rule: "welcome", At: at("2023-01-02T03:04:05Z")},
		},
		Recent: []schemas.SeenEvent{{Key: schemas.EventKey("evt-8"), At: at("2024-06-07T08:09:00Z")}, {Key: schemas.EventKey("evt-9"), At: at("2024-06-07T08:09:10.5Z")}},
		Contacts: []schemas.Contact{
			{At: at("2024-06-01T09:00:00Z"), Channel: schemas.ChannelEmail, Rule: "welcome"},
			{At: at("2024-06-02T09:00:00Z"), Channel: "whatsapp", Rule: "birthday"},
		},
		Unanswered: 3,
		Decisions: []schemas.Decision{
			{At: at("2024-06-01T09:00:00Z"), Recorded: at("2024-06-01T09:00:01.25Z"), Action: schemas.DecisionFired,
				Rule: "welcome", RuleVersion: 2, Stage: 1, Channel: schemas.ChannelEmail, TriggerID: "0123456789abcdef",
				Reason: "-", Policy: "-", DeferredTo: at("2024-06-01T09:00:00Z"), Event: "ev-1"},
			{At: at("2024-06-02T22:00:00Z"), Recorded: at("2024-06-02T22:00:02Z"), Action: schemas.DecisionDeferred,
				Rule: "promo", RuleVersion: 1, Stage: 1, Channel: schemas.ChannelEmail, TriggerID: "fedcba9876543210",
				Reason: "quiet_hours", Policy: "quiet_hours", DeferredTo: at("2024-06-03T08:00:00Z")},
		},
	}
	for i := range 8 {
		c.Cart.Items = append(c.Cart.Items, schemas.Item{
			ProductID: "product-" + strings.Repeat("x", i),
			Quantity:  int32(i + 1),
			UnitPrice: schemas.Money{Minor: int64(999 + i), Currency: "EUR"},
		})
	}
	return c
}

// checkFull fails for every zero field in v (recursively through structs,
// and the first element of slices and maps).
func checkFull(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("%s is zero: set it in fullCustomer (and encode it)", path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			return
		}
		for i := range v.NumField() {
			checkFull(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		checkFull(t, v.Index(0), path+"[0]")
	}
}

func TestFullCustomerIsFull(t *testing.T) {
	checkFull(t, reflect.ValueOf(*fullCustomer()), "Customer")
}

// roundTrip encodes want, checks that it decodes to want, and returns the
// encoding.
func roundTrip(t *testing.T, want *schemas.Customer) []byte {
	t.Helper()
	b := appendCustomer(nil, want)
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(b, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	return b
}

func TestCustomerRoundTrip(t *testing.T) {
	roundTrip(t, fullCustomer())

	// Decoding into a record that held another customer (longer slices, other
	// opt-ins) overwrites everything.
	dirty := fullCustomer()
	dirty.Cart.Items = append(dirty.Cart.Items, dirty.Cart.Items...)
	dirty.Spend = append(dirty.Spend, schemas.Money{Minor: 1, Currency: "GBP"})
	dirty.Profile.OptIns["fax"] = true
	small := &schemas.Customer{ID: "c", Events: 1, Cart: schemas.Cart{Items: []schemas.Item{{Quantity: 2}}}}
	if err := decodeCustomer(appendCustomer(nil, small), dirty); err != nil {
		t.Fatal(err)
	}
	dirty.ID = small.ID
	if len(dirty.Profile.OptIns) != 0 || len(dirty.Spend) != 0 || len(dirty.Cart.Items) != 1 ||
		dirty.Cart.Items[0] != small.Cart.Items[0] || dirty.Events != 1 || !dirty.FirstSeen.IsZero() ||
		len(dirty.Tx) != 0 || len(dirty.Seen) != 0 || len(dirty.Aggregates) != 0 || dirty.RFM != (schemas.RFM{}) ||
		len(dirty.Runs) != 0 || len(dirty.Marks) != 0 || len(dirty.Recent) != 0 || !dirty.LastPurchaseAt.IsZero() ||
		len(dirty.Contacts) != 0 || dirty.Unanswered != 0 || len(dirty.Decisions) != 0 {
		t.Fatalf("decode into a used record left old data: %+v", dirty)
	}

	// The empty record is the version byte and a zero base time.
	if b := appendCustomer(nil, &schemas.Customer{ID: "x"}); !bytes.Equal(b, []byte{customerV2, 0}) {
		t.Fatalf("empty customer encodes to %x", b)
	}
}

func TestCustomerEncodeAllocs(t *testing.T) {
	c := fullCustomer()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() { buf = appendCustomer(buf[:0], c) })
	if allocs != 0 {
		t.Fatalf("appendCustomer into a buffer with capacity: %v allocations, want 0", allocs)
	}
	into := fullCustomer()
	var nm names
	allocs = testing.AllocsPerRun(100, func() {
		if err := decodeCustomerWith(buf, into, &nm); err != nil {
			t.Fatal(err)
		}
	})
	// Only the cart's last event ID is new: every other string matches the
	// reused record's old value (or is a known channel).
	if allocs > 1 {
		t.Fatalf("decodeCustomer into a reused record: %v allocations, want <= 1", allocs)
	}
}

// An older release must read a record from a newer one, which may carry
// fields it does not know: they are skipped.
func TestCustomerSkipsUnknownFields(t *testing.T) {
	want := fullCustomer()
	b := appendCustomer(nil, want)
	b = appendIntField(b, 99, -7)
	b = appendStringField(b, 100, "from the future")
	b, at := beginNested(b, 101)
	b = appendIntField(b, 1, 1)
	b = endNested(b, at)
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(b, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unknown fields changed the record:\n got %+v\nwant %+v", got, want)
	}
}

func TestCustomerRejects(t *testing.T) {
	good := appendCustomer(nil, fullCustomer())
	for name, b := range map[string][]byte{
		"empty":           nil,
		"future version":  append([]byte{customerV2 + 1}, good[1:]...),
		"truncated":       good[:len(good)-4], // inside the last field (a decision)
		"wrong wire type": appendStringField([]byte{customerV1}, custEvents, "x"),
		"wire type 5":     appendTag([]byte{customerV1}, 77, 5),
	} {
		var c schemas.Customer
		if err := decodeCustomer(b, &c); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestCustomerFormatV1 decodes a record written by the first release: every
// later release must still read it. It has none of the rules engine's fields.
func TestCustomerFormatV1(t *testing.T) {
	want := fullCustomer()
	want.Tx, want.LastPurchaseAt, want.Seen, want.Aggregates = nil, time.Time{}, nil, nil
	want.RFM, want.Runs, want.Marks, want.Recent = schemas.RFM{}, nil, nil, nil
	want.Contacts, want.Unanswered, want.Decisions = nil, 0, nil
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(readHex(t, "customer_v1.hex", false), got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 record:\n got %+v\nwant %+v", got, want)
	}
}

// TestCustomerFormatV1Rules decodes a record written by the release that
// added the rules engine's fields (same version byte, new field numbers).
func TestCustomerFormatV1Rules(t *testing.T) {
	want := fullCustomer()
	want.Contacts, want.Unanswered, want.Decisions = nil, 0, nil
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(readHex(t, "customer_v1_rules.hex", false), got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 record with rules fields:\n got %+v\nwant %+v", got, want)
	}
}

// TestCustomerFormatV1Policy decodes a record written by the release that
// added the contact policy's fields (contact history, unanswered count).
func TestCustomerFormatV1Policy(t *testing.T) {
	want := fullCustomer()
	want.Decisions = nil
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(readHex(t, "customer_v1_policy.hex", false), got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 record with policy fields:\n got %+v\nwant %+v", got, want)
	}
}

// TestCustomerFormatV1Audit decodes a record written by the release that
// added the audit trail (field 19, the decisions), the last of format 1: its
// dedupe window holds the event IDs, which come back as their keys.
func TestCustomerFormatV1Audit(t *testing.T) {
	want := withoutLateEvents(fullCustomer())
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(readHex(t, "customer_v1_audit.hex", false), got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 record with the audit trail:\n got %+v\nwant %+v", got, want)
	}
}

// TestCustomerFormatV2 decodes a record written by the release that made
// times compact (format 2).
func TestCustomerFormatV2(t *testing.T) {
	want := withoutLateEvents(fullCustomer())
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(readHex(t, "customer_v2.hex", false), got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v2 record:\n got %+v\nwant %+v", got, want)
	}
}

// TestCustomerFormatV2Late decodes a record written by the release that
// added late events to the audit trail (Decision.Event).
func TestCustomerFormatV2Late(t *testing.T) {
	want := fullCustomer()
	got := &schemas.Customer{ID: want.ID}
	if err := decodeCustomer(readHex(t, newestCustomerHex, *update), got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v2 record with late events:\n got %+v\nwant %+v", got, want)
	}
}

// withoutLateEvents clears what records written before Decision.Event
// cannot hold.
func withoutLateEvents(c *schemas.Customer) *schemas.Customer {
	for i := range c.Decisions {
		c.Decisions[i].Event = ""
	}
	return c
}

// compactCustomer has the values format 2 writes in a special form: times
// at the edges of the compact encoding, a run whose cause is its
// occurrence, trigger IDs of 32 hex digits (and one in capitals, which is
// kept as it is).
func compactCustomer() *schemas.Customer {
	last := time.Date(2026, 11, 28, 14, 0, 0, 123_000_000, time.UTC)
	c := &schemas.Customer{
		ID:        "c",
		FirstSeen: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), // one nanosecond after the zero time
		LastSeen:  last,
		Seen:      []schemas.TypeSeen{{Type: "page_view", At: last.Add(-time.Nanosecond)}},
		Aggregates: []schemas.Aggregate{{Name: "w", Entries: []schemas.AggEntry{
			{At: last.Add(-time.Hour), Value: -5, Key: "k"}, {At: time.Unix(-1, 999_999_999).UTC(), Value: 1},
		}}},
		Runs: []schemas.Run{
			{Rule: "r", Occurrence: "e-1", CausedBy: "e-1", StartedAt: last, Due: []time.Time{{}, last.AddDate(1, 0, 0)}},
			{Rule: "r", Key: "k", Occurrence: "k", CausedBy: "e-2", Due: []time.Time{time.Unix(1<<41, 5).UTC()}},
		},
		Marks:    []schemas.Mark{{Rule: "m", At: time.Unix(-1<<41, 0).UTC(), Expires: last.Add(time.Microsecond)}},
		Recent:   []schemas.SeenEvent{{Key: schemas.EventKey("e-1"), At: last}, {Key: 0, At: time.Time{}}, {Key: ^uint64(0), At: last.Add(-1)}},
		Contacts: []schemas.Contact{{At: last, Channel: schemas.ChannelEmail, Rule: "welcome_rule"}, {At: last, Channel: "fax", Rule: "welcome_rule"}},
		Decisions: []schemas.Decision{
			{At: last, Recorded: last.Add(1500 * time.Microsecond), Action: schemas.DecisionFired, Rule: "welcome_rule", TriggerID: "1ad60bc59c65607bd55c1fac4396d612"},
			{At: last, Action: schemas.DecisionFired, Rule: "welcome_rule", TriggerID: "1AD60BC59C65607BD55C1FAC4396D612",
				Channel: "fax", Reason: "quiet_hours", Policy: "quiet_hours"},
			{At: last, Action: schemas.DecisionSuppressed, Rule: "welcome_rule", TriggerID: "00000000000000000000000000000000",
				Channel: schemas.ChannelEmail, Reason: "quiet_hours", Policy: "cap_email"},
		},
	}
	return c
}

func TestCustomerCompactForms(t *testing.T) {
	want := compactCustomer()
	b := roundTrip(t, want)
	// A time near the base takes a few bytes; its field, two more.
	base := newTimeBase(want.LastSeen)
	for d, size := range map[time.Duration]int{0: 1, -time.Hour: 4, 24 * time.Hour: 5, time.Millisecond + 1: 3} {
		if n := len(base.appendCTime(nil, want.LastSeen.Add(d))); n > size {
			t.Errorf("a time %v from the base takes %d bytes, want <= %d", d, n, size)
		}
	}
	// The run whose cause is its occurrence does not write it twice, and
	// the hex trigger IDs take 16 bytes.
	if n := bytes.Count(b, []byte("e-1")); n != 1 {
		t.Errorf("the run's event ID is written %d times, want once", n)
	}
	// A name the record repeats is written once; names past the table's
	// size every time.
	for name, want := range map[string]int{"welcome_rule": 1, "fired": 1, "quiet_hours": 1, "fax": 1} {
		if n := bytes.Count(b, []byte(name)); n != want {
			t.Errorf("%q is written %d times, want %d", name, n, want)
		}
	}
	// More names than the table holds, each used twice: those past it
	// are written as strings every time.
	many := &schemas.Customer{ID: "m"}
	for round := range 2 {
		for i := range maxNames + 8 {
			many.Marks = append(many.Marks, schemas.Mark{Rule: schemas.RuleID(fmt.Sprintf("mark_rule_%02d", i)), At: time.Unix(int64(round), 0).UTC()})
		}
	}
	mb := roundTrip(t, many)
	for name, want := range map[string]int{"mark_rule_00": 1, fmt.Sprintf("mark_rule_%02d", maxNames-1): 1, fmt.Sprintf("mark_rule_%02d", maxNames): 2} {
		if n := bytes.Count(mb, []byte(name)); n != want {
			t.Errorf("%q is written %d times, want %d", name, n, want)
		}
	}
	if bytes.Contains(b, []byte("1ad60bc59c65607bd55c1fac4396d612")) || !bytes.Contains(b, []byte("1AD60BC59C65607BD55C1FAC4396D612")) {
		t.Errorf("trigger IDs: the lowercase hex one is not packed, or the other one is: %x", b)
	}
	for name, bad := range map[string][]byte{
		"zero time with a payload":   {customerV2, 0, custFirstSeen<<3 | wireBytes, 2, 7, 0},
		"absolute time nanos 1e9":    append([]byte{customerV2, 0, custFirstSeen<<3 | wireBytes, 7, ctimeAbsolute, 2}, 0x80, 0x94, 0xeb, 0xdc, 0x03),
		"sub-millisecond 1e6":        {customerV2, 0, custFirstSeen<<3 | wireBytes, 4, ctimeSub, 0xc0, 0x84, 0x3d},
		"short dedupe key":           {customerV2, 0, custRecentKeys<<3 | wireBytes, 3, 1, 2, 3},
		"trigger key of 15 bytes":    append([]byte{customerV2, 0, custDecision<<3 | wireBytes, 17, decTriggerKey<<3 | wireBytes, 15}, make([]byte, 15)...),
		"run due with trailing byte": {customerV2, 0, custRun<<3 | wireBytes, 4, runDue<<3 | wireBytes, 2, 0, 0},
		"name index past the table":  {customerV2, 0, custRun<<3 | wireBytes, 5, runRule<<3 | wireBytes, 1, 'r', runRuleRef << 3, 2},
		"name index in format 1":     {customerV1, custMark<<3 | wireBytes, 2, markRuleRef << 3, 0},
	} {
		var c schemas.Customer
		if err := decodeCustomer(bad, &c); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// readHex reads a hex record from testdata; write rewrites it from the
// current codec first.
func readHex(t *testing.T, name string, write bool) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if write {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(appendCustomer(nil, fullCustomer()))+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimerRoundTrip(t *testing.T) {
	want := schemas.Timer{
		Customer:   "cust-\x00-1",
		ID:         "cart_abandoned",
		Due:        time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC),
		Rule:       "cart-rule",
		Stage:      2,
		Occurrence: "evt-1",
		CausedBy:   []string{"evt-1", "evt-2"},
		Deferred:   deferredTrigger(),
	}
	b := appendTimer(nil, &want, want.Due.UnixMilli())
	var got schemas.Timer
	ms, err := decodeTimer(b, &got)
	if err != nil {
		t.Fatal(err)
	}
	if ms != want.Due.UnixMilli() || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: got %+v (%d), want %+v", got, ms, want)
	}
	checkFull(t, reflect.ValueOf(got), "Timer")
	if _, err := decodeTimer(b[:len(b)-2], &got); err == nil {
		t.Fatal("truncated timer decoded")
	}
}

// deferredTrigger is a trigger with every field the timer record keeps
// set (FiredAt is not kept: it is set when the trigger is written).
func deferredTrigger() *schemas.Trigger {
	return &schemas.Trigger{
		ID: "0123abcd", Rule: "welcome", RuleVersion: 2, Kind: "welcome_mail", Stage: 2, Channel: schemas.ChannelEmail,
		Priority: 40, Customer: "cust-\x00-1", FiredAt: time.Time{},
		DueAt:      time.Date(2024, 5, 5, 22, 0, 0, 0, time.UTC),
		ExpiresAt:  time.Date(2024, 5, 6, 22, 0, 0, 0, time.UTC),
		CausedBy:   []string{"evt-1"},
		Attributes: map[string]string{"b": "2", "a": "", "": "empty key"},
		Items:      []schemas.Item{{ProductID: "p1", Quantity: 2, UnitPrice: schemas.Money{Minor: 1250, Currency: "EUR"}}},
		Value:      schemas.Money{Minor: 2500, Currency: "EUR"},
	}
}

// TestTimerFormatV1 decodes a timer record written before the contact
// policy (no deferred trigger): it must come back with Deferred nil. And a
// deferred trigger's bytes do not depend on the map order of attributes.
func TestTimerFormatV1(t *testing.T) {
	// Written by the release before the contact policy: customer "c1", ID
	// "welcome", due 2024-05-06T07:08:09.123Z, rule "welcome", stage 2,
	// occurrence "e1", caused by "e1".
	old, err := hex.DecodeString("010a026331120777656c636f6d6518c6e0d9cbe963220777656c636f6d652804320265313a026531")
	if err != nil {
		t.Fatal(err)
	}
	var got schemas.Timer
	ms, err := decodeTimer(old, &got)
	if err != nil {
		t.Fatal(err)
	}
	want := schemas.Timer{Customer: "c1", ID: "welcome", Due: time.UnixMilli(ms).UTC(), Rule: "welcome", Stage: 2,
		Occurrence: "e1", CausedBy: []string{"e1"}}
	if !reflect.DeepEqual(got, want) || got.Due != time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC) {
		t.Fatalf("old timer: got %+v, want %+v", got, want)
	}
	tm := schemas.Timer{Customer: "c1", ID: "x", Deferred: deferredTrigger()}
	first := appendTimer(nil, &tm, 0)
	for range 20 {
		tm.Deferred = deferredTrigger() // a fresh map: another iteration order
		if b := appendTimer(nil, &tm, 0); !bytes.Equal(b, first) {
			t.Fatalf("deferred trigger encodes differently: %x vs %x", b, first)
		}
	}
}

func TestOffsetsRoundTrip(t *testing.T) {
	in := map[string]int64{"clicks": 10, "transactions": 0, "profiles": 1 << 40}
	b := appendOffsets(nil, []string{"clicks", "profiles", "transactions"}, in, 77)
	out := map[string]int64{"stale": 1}
	cl, err := decodeOffsets(b, out)
	if err != nil {
		t.Fatal(err)
	}
	if cl != 77 || !reflect.DeepEqual(in, out) {
		t.Fatalf("got %v %d, want %v 77", out, cl, in)
	}
}

// FuzzDecodeCustomer checks that decodeCustomer never panics on any input,
// and that what it accepts is canonical after one re-encoding: encode(decode(b))
// decodes again, to a record that encodes to the same bytes, whether decoded
// into a fresh or a used record.
func FuzzDecodeCustomer(f *testing.F) {
	f.Add(appendCustomer(nil, fullCustomer()))
	f.Add(appendCustomer(nil, &schemas.Customer{Events: 1}))
	f.Add([]byte{customerV1})
	f.Add([]byte{customerV2, 0})
	f.Add(appendCustomer(nil, compactCustomer()))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c1 schemas.Customer
		if err := decodeCustomer(b, &c1); err != nil {
			return
		}
		e1 := appendCustomer(nil, &c1)
		var c2 schemas.Customer
		if err := decodeCustomer(e1, &c2); err != nil {
			t.Fatalf("re-encoding %x does not decode: %v", e1, err)
		}
		if e2 := appendCustomer(nil, &c2); !bytes.Equal(e1, e2) {
			t.Fatalf("not stable:\n%x\n%x", e1, e2)
		}
		used := fullCustomer()
		if err := decodeCustomer(e1, used); err != nil {
			t.Fatal(err)
		}
		if e3 := appendCustomer(nil, used); !bytes.Equal(e1, e3) {
			t.Fatalf("decoding into a used record differs:\n%x\n%x", e1, e3)
		}
	})
}
