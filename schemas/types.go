package schemas

import (
	"fmt"
	"time"
)

// CustomerID identifies a customer. It is the record key on every topic.
type CustomerID string

// EventType names what happened. The set is open: businesses send their own
// types and rules may trigger on them.
type EventType string

// Common event types. Any other non-empty string is a valid custom type.
const (
	PageView       EventType = "page_view"
	ProductView    EventType = "product_view"
	AddToCart      EventType = "add_to_cart"
	RemoveFromCart EventType = "remove_from_cart"
	CheckoutStart  EventType = "checkout_start"
	Signup         EventType = "signup"
	EmailOpen      EventType = "email_open"
	EmailClick     EventType = "email_click"
	PushOpen       EventType = "push_open"

	Purchase       EventType = "purchase"
	Refund         EventType = "refund"
	Cancellation   EventType = "cancellation"
	CouponIssued   EventType = "coupon_issued"
	CouponRedeemed EventType = "coupon_redeemed"

	ProfileUpdate EventType = "profile_update"
	// ProfileErase on the profile topic erases the customer (GDPR): the
	// processor removes every piece of its state and writes an erased
	// record (a Trigger of KindErased) to the trigger topic.
	ProfileErase EventType = "profile_erase"
)

// KindErased is the kind of the record the processor writes to the trigger
// topic when it erased a customer: not a message to deliver, a notice that
// downstream senders must forget the customer too. Its channel and rule are
// empty.
const KindErased = "erased"

// EraseRule is the rule ID of an erased record. Rule IDs of a rules file
// cannot contain a dot, so it never names a real rule.
const EraseRule RuleID = "triggerd.erase"

// RuleID names a rule. Once-only marks belong to the rule ID, not its version.
type RuleID string

// Channel is a delivery channel of a trigger.
type Channel string

// Channels the shipped rules use. Others may be configured.
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
	ChannelPush  Channel = "push"
	ChannelRisk  Channel = "risk" // the fraud desk
)

// Source says which input an Event came from.
type Source uint8

const (
	SourceUnknown Source = iota
	SourceClickstream
	SourceTransaction
	SourceProfile
)

func (s Source) String() string {
	switch s {
	case SourceClickstream:
		return "clickstream"
	case SourceTransaction:
		return "transaction"
	case SourceProfile:
		return "profile"
	}
	return "unknown"
}

// Money is an amount in integer minor units (cents) of a currency. It is
// never a float: sums of prices must be exact.
type Money struct {
	Minor    int64  // amount in minor units, e.g. 1999 for 19.99 EUR
	Currency string // ISO 4217 code, e.g. "EUR"
}

// String formats the amount assuming two minor digits, e.g. "19.99 EUR".
func (m Money) String() string {
	sign := ""
	v := m.Minor
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, v/100, v%100, m.Currency)
}

// Item is a product line in a cart or an order.
type Item struct {
	ProductID string
	Quantity  int32
	UnitPrice Money
}

// Date is a calendar date without a time zone: a local date in the
// customer's zone (birthday, signup date, contract end).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// IsZero reports whether the date is unset.
func (d Date) IsZero() bool { return d.Year == 0 && d.Month == 0 && d.Day == 0 }

// String formats the date as YYYY-MM-DD, or "" when unset.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("schemas: bad date %q: want YYYY-MM-DD", s)
	}
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, nil
}

// Profile holds the customer attributes sent on the profile topic.
type Profile struct {
	Birthday    Date
	SignupDate  Date
	TimeZone    string // IANA zone, e.g. "Europe/Berlin"; "" = unknown
	Country     string // ISO 3166-1 alpha-2
	OptIns      map[Channel]bool
	ContractEnd Date
}

// Event is one decoded input record from any input topic. The processor
// reuses Event values between records: a consumer must copy what it keeps.
// Fields that do not apply to the Source are zero.
type Event struct {
	Source   Source
	ID       string // unique event ID, used for deduplication and trigger causes
	Customer CustomerID
	Type     EventType
	Time     time.Time // event time (UTC)

	// Clickstream fields.
	SessionID string
	ProductID string
	Quantity  int32
	Price     Money // unit price of ProductID
	Device    string

	// Transaction fields.
	OrderID         string
	Amount          Money
	Items           []Item
	PaymentMethod   string
	CardFingerprint string
	CouponID        string
	CouponExpiry    time.Time // zero when not a coupon event
	ServiceDate     Date      // date of the cruise/flight/event bought, if any
	ContractEnd     Date

	// Shared by clickstream and transactions.
	Country    string
	Properties map[string]string // custom attributes; may be nil

	// Profile fields (Source == SourceProfile).
	Profile Profile
}

// Reset clears e for reuse, keeping the capacity of its slices.
func (e *Event) Reset() {
	items := e.Items[:0]
	*e = Event{Items: items}
}

// Trigger is one message the processor asks a downstream sender to deliver.
// Its ID is deterministic (customer, rule, version, stage, occurrence), so a
// sender can deduplicate.
type Trigger struct {
	ID          string
	Rule        RuleID
	RuleVersion int32
	Kind        string // e.g. "cart_abandoned"
	Stage       int32  // 1 for the first message of a sequence
	Channel     Channel
	Priority    int32 // higher wins
	Customer    CustomerID
	FiredAt     time.Time // processing time when it was written
	DueAt       time.Time // event time it was due
	ExpiresAt   time.Time // a sender should drop it after this time
	CausedBy    []string  // event IDs that caused it
	Attributes  map[string]string
	Items       []Item // cart or order lines, if any
	Value       Money  // cart or order value, if any
}

// Timer is a durable follow-up for one customer. (Customer, ID) is unique:
// scheduling an existing ID moves it.
type Timer struct {
	Customer   CustomerID
	ID         string // unique per customer, e.g. "cart_abandoned"
	Due        time.Time
	Rule       RuleID
	Stage      int32
	Occurrence string   // what this run of the rule is about, e.g. the event ID that started it
	CausedBy   []string // event IDs carried to the trigger
	// Deferred, when set, is a trigger the contact policy held back
	// (quiet hours): the timer releases it at Due, when it is checked
	// again. Its DueAt is the time it was first due, so the policy can
	// tell how late the release is (stale).
	Deferred *Trigger
}

// Cart is the customer's current shopping cart.
type Cart struct {
	Items     []Item
	UpdatedAt time.Time // event time of the last change
	LastEvent string    // ID of the event that last changed it
}

// Value sums the cart lines. Carts are single-currency; a line in another
// currency is summed separately and ignored here.
func (c *Cart) Value() Money {
	var m Money
	for _, it := range c.Items {
		if m.Currency == "" {
			m.Currency = it.UnitPrice.Currency
		}
		if it.UnitPrice.Currency == m.Currency {
			m.Minor += it.UnitPrice.Minor * int64(it.Quantity)
		}
	}
	return m
}

// Customer is the per-customer record kept in state. Rules read and update
// it; the state package stores it.
type Customer struct {
	ID        CustomerID
	FirstSeen time.Time
	LastSeen  time.Time

	Cart Cart

	Events    int64   // events seen, all types
	Purchases int64   // purchase transactions
	Spend     []Money // lifetime spend, one entry per currency

	Profile          Profile
	ProfileUpdatedAt time.Time

	// Maintained by the rules engine; see the types below.
	Tx             []TxStat    // purchases per currency
	LastPurchaseAt time.Time   // event time of the last purchase
	Seen           []TypeSeen  // last seen per event type, most recent last, bounded
	Aggregates     []Aggregate // sliding windows declared by the rules file
	RFM            RFM
	Runs           []Run
	Marks          []Mark
	Recent         []SeenEvent // recent events (ID fingerprints) for deduplication, oldest first

	// Maintained by the contact policy (only when the rules file has one).
	Contacts   []Contact // marketing triggers emitted, oldest first, pruned by the longest cap window
	Unanswered int32     // marketing triggers emitted since the last engagement

	// Maintained by the processor: the audit trail of the last decisions
	// about this customer, oldest first, at most MaxDecisions.
	Decisions []Decision
}

// MaxDecisions bounds a customer's audit trail (Customer.Decisions): enough
// to answer "why did (or didn't) this customer get that message" about the
// last few weeks of a typical customer, small enough that a hot customer's
// record does not grow with its history.
const MaxDecisions = 32

// DecisionAction says what became of a trigger.
type DecisionAction string

// The decisions the audit trail records.
const (
	DecisionFired      DecisionAction = "fired"
	DecisionSuppressed DecisionAction = "suppressed" // as ActionSuppressed
	DecisionDeferred   DecisionAction = "deferred"   // as ActionDeferred
	// DecisionLateEvent is not about a trigger: the event (Event, of the
	// input topic in Policy) arrived after the watermark had passed its
	// time, so timers that should have come after it had fired already.
	DecisionLateEvent DecisionAction = "late_event"
)

// Decision is one entry of a customer's audit trail: a trigger that fired,
// or that the contact policy suppressed or deferred. It names the rule and
// the policy, never attribute values (no payload, no profile data): the
// trail answers "why", and it must not become a second copy of the
// customer's data.
type Decision struct {
	At          time.Time // event time of the decision (when the trigger was due or decided)
	Recorded    time.Time // processing time it was written
	Action      DecisionAction
	Rule        RuleID
	RuleVersion int32
	Stage       int32
	Channel     Channel
	TriggerID   string
	Reason      string    // suppressed or deferred: cap, quiet_hours, no_consent, ...
	Policy      string    // suppressed or deferred: the cap's name, quiet_hours, consent, ...
	DeferredTo  time.Time // deferred: when the trigger is checked again
	Event       string    // late_event: the event's ID
}

// Contact is one marketing trigger that was emitted: the contact history
// that caps count. Only emitted triggers are recorded, in the same state
// change as the output, so a cap never counts a message that was not sent.
type Contact struct {
	At      time.Time // the trigger's due time (event time)
	Channel Channel
	Rule    RuleID
}

// SuppressAction says what the contact policy did with a trigger.
type SuppressAction string

const (
	// ActionSuppressed: the trigger was not sent and will not be.
	ActionSuppressed SuppressAction = "suppressed"
	// ActionDeferred: the trigger waits in a durable timer until
	// DeferredTo, when it is checked again.
	ActionDeferred SuppressAction = "deferred"
)

// Suppression is the record of a trigger the contact policy stopped or
// held back: the trigger that would have been sent, what stopped it and
// why. Nothing is dropped without one.
type Suppression struct {
	Trigger    Trigger
	Action     SuppressAction
	Reason     string    // cap, quiet_hours, no_consent, no_response, stale, rule_removed
	Policy     string    // the policy that decided: a cap's name, quiet_hours, consent, stop_after, max_delay
	DecidedAt  time.Time // event time of the decision
	DeferredTo time.Time // ActionDeferred: when the trigger is released; else zero
}

// The fields below are maintained by the rules engine (package rules) so
// that rules can use counters, windows, segments and their own progress. They
// are bounded: every list is capped by the rules file's settings, never by
// the customer's history.

// TxStat counts one currency's purchases: how many and their sum in minor
// units. A running average is Sum / Count.
type TxStat struct {
	Currency string
	Count    int64
	Sum      int64
}

// TypeSeen is when an event type was last seen for a customer.
type TypeSeen struct {
	Type EventType
	At   time.Time
}

// AggEntry is one entry of a sliding window: when, a value (for sums) and a
// key (for distinct values and per-key counts).
type AggEntry struct {
	At    time.Time
	Value int64
	Key   string
}

// Aggregate is a named sliding window declared in the rules file. Entries are
// in event-time order, pruned by the window and capped by the declared size.
type Aggregate struct {
	Name    string
	Entries []AggEntry
}

// RFM holds the recency, frequency and monetary scores (1 to 5, 0 = not
// scored yet) and the segment label they map to.
type RFM struct {
	R, F, M int32
	Segment string
}

// Run is a pending run of a rule that waits on a timer: the stages of a
// sequence, the next occurrence of a calendar date, or a silence watch. The
// timer of a run has the ID Rule, or Rule + "/" + Key when Key is set.
type Run struct {
	Rule       RuleID
	Key        string    // occurrence key (order ID, coupon ID); "" = one run per customer
	Occurrence string    // what the triggers of this run are about (start event ID, key, date)
	Stage      int32     // the stage whose timer is pending; 0 = none pending
	StartedAt  time.Time // sequence: start event time; silence: last matching event
	Version    int32     // the rule version the run started under
	Due        []time.Time
	CausedBy   string // the event ID that started the run
}

// Mark records that a rule fired (or started) for a key: once-only marks
// have no expiry; once-per-period marks expire and are pruned. Marks belong
// to the rule ID, not its version.
type Mark struct {
	Rule    RuleID
	Key     string
	At      time.Time
	Expires time.Time // zero: never
}

// SeenEvent is an event remembered for input deduplication.
type SeenEvent struct {
	Key uint64 // EventKey of the event's ID
	At  time.Time
}

// EventKey is the fingerprint of an event ID that the dedupe window keeps:
// 8 bytes however long the ID (a UUID is 36), so a hot customer's record
// does not carry 64 IDs. It is 64-bit FNV-1a: two of one customer's IDs
// within the window collide with a chance of about 2^-58, and a collision
// drops an event as a duplicate. It is stored, so it never changes.
func EventKey(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}
