package rules

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/triggerd/triggerd/schemas"
)

// The CEL environment. Every variable is declared with its type under a
// qualified name (event.type, customer.cart.size, agg.card_tx_10m), so the
// checker rejects a misspelt field at load time with its position, and the
// evaluator asks the activation for exactly the names an expression uses:
// nothing is built for fields a rule does not read.
//
// Event-relative values: customer.spend, customer.tx_count, customer.tx_sum
// and customer.tx_avg are in the event's currency (event.currency); the
// before.* variables are the same counters before the event was applied.

type varDecl struct {
	name string
	typ  *cel.Type
	doc  string
}

var (
	timestampT = cel.TimestampType
	stringMapT = cel.MapType(cel.StringType, cel.StringType)
)

// vars lists every variable of the rules language. The README's table is
// generated from the same list by "triggerd rules vars".
var vars = []varDecl{
	{"now", timestampT, "event time of the event, or due time of the timer, being evaluated"},

	{"event.id", cel.StringType, "event ID"},
	{"event.type", cel.StringType, `event type; "" when a timer fires`},
	{"event.source", cel.StringType, "clickstream, transaction, profile or rules (synthetic)"},
	{"event.time", timestampT, "event time"},
	{"event.session_id", cel.StringType, ""},
	{"event.product_id", cel.StringType, ""},
	{"event.quantity", cel.IntType, ""},
	{"event.price", cel.IntType, "unit price, minor units"},
	{"event.device", cel.StringType, ""},
	{"event.country", cel.StringType, "ISO 3166-1 alpha-2"},
	{"event.order_id", cel.StringType, ""},
	{"event.amount", cel.IntType, "transaction amount, minor units"},
	{"event.currency", cel.StringType, "currency of the amount (else of the price)"},
	{"event.items", cel.IntType, "number of order lines"},
	{"event.payment_method", cel.StringType, ""},
	{"event.card_fingerprint", cel.StringType, ""},
	{"event.coupon_id", cel.StringType, ""},
	{"event.coupon_expiry", timestampT, "zero time when not a coupon event"},
	{"event.service_date", cel.StringType, `YYYY-MM-DD or ""`},
	{"event.contract_end", cel.StringType, `YYYY-MM-DD or ""`},
	{"event.properties", stringMapT, "custom attributes"},

	{"customer.id", cel.StringType, ""},
	{"customer.first_seen", timestampT, ""},
	{"customer.last_seen", timestampT, ""},
	{"customer.events", cel.IntType, "events seen, all types"},
	{"customer.purchases", cel.IntType, "purchases, all currencies"},
	{"customer.spend", cel.IntType, "lifetime spend in the event's currency"},
	{"customer.tx_count", cel.IntType, "purchases in the event's currency"},
	{"customer.tx_sum", cel.IntType, "sum of purchases in the event's currency"},
	{"customer.tx_avg", cel.IntType, "average purchase in the event's currency (rounded down; 0 without purchases)"},
	{"customer.spend_by_currency", cel.MapType(cel.StringType, cel.IntType), "lifetime spend per currency"},
	{"customer.last_purchase_at", timestampT, ""},
	{"customer.last_seen_by_type", cel.MapType(cel.StringType, timestampT), "last event time per event type (bounded)"},
	{"customer.cart.size", cel.IntType, "cart lines"},
	{"customer.cart.quantity", cel.IntType, "items in the cart"},
	{"customer.cart.value", cel.IntType, "cart value, minor units"},
	{"customer.cart.currency", cel.StringType, ""},
	{"customer.cart.products", cel.ListType(cel.StringType), "product IDs in the cart"},
	{"customer.cart.last_event", cel.StringType, "ID of the event that last changed the cart"},
	{"customer.cart.updated_at", timestampT, ""},
	{"customer.birthday", cel.StringType, `YYYY-MM-DD or ""`},
	{"customer.signup_date", cel.StringType, `YYYY-MM-DD or ""`},
	{"customer.contract_end", cel.StringType, `YYYY-MM-DD or ""`},
	{"customer.time_zone", cel.StringType, `IANA zone or "" (unknown)`},
	{"customer.country", cel.StringType, ""},
	{"customer.profile_updated_at", timestampT, ""},
	{"customer.opt_ins", cel.MapType(cel.StringType, cel.BoolType), "channel -> opted in"},
	{"customer.r", cel.IntType, "RFM recency score 1-5 (0 = not scored)"},
	{"customer.f", cel.IntType, "RFM frequency score"},
	{"customer.m", cel.IntType, "RFM monetary score"},
	{"customer.segment", cel.StringType, `segment label, "" until scored`},

	{"before.events", cel.IntType, "customer.events before this event"},
	{"before.purchases", cel.IntType, ""},
	{"before.spend", cel.IntType, "in the event's currency"},
	{"before.tx_count", cel.IntType, "in the event's currency"},
	{"before.tx_sum", cel.IntType, "in the event's currency"},
	{"before.tx_avg", cel.IntType, "in the event's currency"},
	{"before.last_seen", timestampT, "customer.last_seen before this event"},
	{"before.segment", cel.StringType, ""},
	{"before.cart.size", cel.IntType, ""},

	{"seq.key", cel.StringType, "occurrence key of the sequence run"},
	{"seq.occurrence", cel.StringType, "what the run's triggers are about (key, else start event ID)"},
	{"seq.stage", cel.IntType, "stage being fired (0 at start)"},
	{"seq.started_at", timestampT, "time of the start event"},
}

// Var describes one variable of the rules language.
type Var struct {
	Name, Type, Doc string
}

// Vars lists the variables rule expressions can use (agg.NAME aside).
func Vars() []Var {
	out := make([]Var, len(vars))
	for i, v := range vars {
		out[i] = Var{Name: v.name, Type: strings.ReplaceAll(v.typ.String(), "google.protobuf.Timestamp", "timestamp"), Doc: v.doc}
	}
	return out
}

// zones caches time zones by name: LoadLocation parses tzdata on every call.
type zones struct {
	def     *time.Location
	defName string
	m       sync.Map // string -> *time.Location (nil: unknown zone)
}

// get returns the zone name, or the default zone for "" and unknown names.
func (z *zones) get(name string) *time.Location {
	if name == "" {
		return z.def
	}
	if v, ok := z.m.Load(name); ok {
		if loc := v.(*time.Location); loc != nil {
			return loc
		}
		return z.def
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
	}
	z.m.Store(name, loc)
	if loc == nil {
		return z.def
	}
	return loc
}

func newEnv(aggs []string, z *zones) (*cel.Env, error) {
	opts := []cel.EnvOption{cel.OptionalTypes()}
	for _, v := range vars {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	for _, a := range aggs {
		opts = append(opts, cel.Variable("agg."+a, cel.IntType))
	}
	opts = append(opts,
		cel.Function("local_time", cel.Overload("local_time_string_string_string",
			[]*cel.Type{cel.StringType, cel.StringType, cel.StringType}, cel.TimestampType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				d, err := schemas.ParseDate(string(args[0].(types.String)))
				if err != nil {
					return types.NewErr("local_time: %v", err)
				}
				hh, mm, err := parseClock(string(args[1].(types.String)))
				if err != nil {
					return types.NewErr("local_time: %v", err)
				}
				return types.Timestamp{Time: localTime(d, hh, mm, z.get(string(args[2].(types.String))))}
			}))),
		cel.Function("date_add", cel.Overload("date_add_string_int",
			[]*cel.Type{cel.StringType, cel.IntType}, cel.StringType,
			cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				d, err := schemas.ParseDate(string(a.(types.String)))
				if err != nil {
					return types.NewErr("date_add: %v", err)
				}
				return types.String(addDays(d, int(b.(types.Int))).String())
			}))),
		cel.Function("money", cel.Overload("money_int_string",
			[]*cel.Type{cel.IntType, cel.StringType}, cel.StringType,
			cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				return types.String(schemas.Money{Minor: int64(a.(types.Int)), Currency: string(b.(types.String))}.String())
			}))),
		cel.Function("days", cel.Overload("days_int",
			[]*cel.Type{cel.IntType}, cel.DurationType,
			cel.UnaryBinding(func(a ref.Val) ref.Val {
				return types.Duration{Duration: time.Duration(a.(types.Int)) * 24 * time.Hour}
			}))),
	)
	return cel.NewEnv(opts...)
}

// segmentEnv is the environment of segment conditions: the three scores.
func segmentEnv() (*cel.Env, error) {
	return cel.NewEnv(cel.Variable("r", cel.IntType), cel.Variable("f", cel.IntType), cel.Variable("m", cel.IntType))
}

// parseClock parses "HH:MM".
func parseClock(s string) (int, int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		return 0, 0, fmt.Errorf("bad time of day %q: want HH:MM", s)
	}
	return hh, mm, nil
}

// snapshot holds the counters an event changes, taken before it is applied:
// the before.* variables and the "before" side of threshold rules.
type snapshot struct {
	events, purchases     int64
	spend, txCount, txSum int64 // in the event's currency
	lastSeen              time.Time
	segment               string
	cartSize              int
	profile               schemas.Profile // dates and zone only (OptIns is not copied)
}

// evalState is the CEL activation: it answers the variables of one
// evaluation from the customer record, the event and the sequence run in
// hand. The caller owns one per partition (in Actions) and rebinds it for
// every evaluation, so evaluation allocates only the values CEL boxes.
type evalState struct {
	set        *Set
	c          *schemas.Customer
	ev         *schemas.Event
	now        time.Time
	pre        snapshot
	beforeMode bool // customer.* counters answer from pre (threshold "before" values)

	// Scratch of the contact policy (policy.go): candidate order and
	// which candidates go out.
	order []int
	keep  []bool

	run  *schemas.Run // the sequence run being evaluated, if any
	run0 schemas.Run  // scratch for a run being started

	// cartProducts caches customer.cart.products for one cart state.
	cartProducts    ref.Val
	cartProductsFor *schemas.Customer
	cartProductsID  schemas.CustomerID
	cartProductsEv  string
	cartProductsN   int

	cur                 string // the event's currency
	spend, txCnt, txSum int64  // after the event, in cur

	// aggKey caches the key of a by-aggregate for the current event.
	aggKey   []string
	aggKeyOK []bool

	// Boxed values of the last resolution of each variable: CEL needs a
	// ref.Val (an interface, so a heap copy), and most values repeat
	// from one evaluation to the next (a currency, a country, the same
	// event read by several rules).
	strs [72]struct {
		s string
		v ref.Val
	}
	ints [72]struct {
		i int64
		v ref.Val
	}
	times [72]struct {
		t time.Time
		v ref.Val
	}

	a         *Actions
	thrBefore []int64       // threshold values before the event, by position in typeRules
	synthetic schemas.Event // the segment_changed event
}

var _ interpreter.Activation = (*evalState)(nil)

func (s *evalState) Parent() interpreter.Activation { return nil }

// bind prepares s for the event ev (or the empty event of a timer) of c.
func (s *evalState) bind(set *Set, c *schemas.Customer, ev *schemas.Event, now time.Time) {
	s.set, s.c, s.ev, s.now = set, c, ev, now
	s.run = nil
	s.beforeMode = false
	s.cur = ev.Amount.Currency
	if s.cur == "" {
		s.cur = ev.Price.Currency
	}
	s.refreshCurrency()
	if cap(s.aggKey) < len(set.aggs) {
		s.aggKey = make([]string, len(set.aggs))
		s.aggKeyOK = make([]bool, len(set.aggs))
	}
	s.aggKey = s.aggKey[:len(set.aggs)]
	s.aggKeyOK = s.aggKeyOK[:len(set.aggs)]
	clear(s.aggKeyOK)
}

// refreshCurrency reads the customer's counters in the event's currency.
func (s *evalState) refreshCurrency() {
	s.spend, s.txCnt, s.txSum = 0, 0, 0
	if s.cur == "" {
		return
	}
	for i := range s.c.Spend {
		if s.c.Spend[i].Currency == s.cur {
			s.spend = s.c.Spend[i].Minor
		}
	}
	for i := range s.c.Tx {
		if s.c.Tx[i].Currency == s.cur {
			s.txCnt, s.txSum = s.c.Tx[i].Count, s.c.Tx[i].Sum
		}
	}
}

func takeSnapshot(p *snapshot, c *schemas.Customer, ev *schemas.Event) {
	cur := ev.Amount.Currency
	if cur == "" {
		cur = ev.Price.Currency
	}
	*p = snapshot{events: c.Events, purchases: c.Purchases, lastSeen: c.LastSeen, segment: c.RFM.Segment, cartSize: len(c.Cart.Items)}
	p.profile = schemas.Profile{Birthday: c.Profile.Birthday, SignupDate: c.Profile.SignupDate,
		ContractEnd: c.Profile.ContractEnd, TimeZone: c.Profile.TimeZone}
	if cur == "" {
		return
	}
	for i := range c.Spend {
		if c.Spend[i].Currency == cur {
			p.spend = c.Spend[i].Minor
		}
	}
	for i := range c.Tx {
		if c.Tx[i].Currency == cur {
			p.txCount, p.txSum = c.Tx[i].Count, c.Tx[i].Sum
		}
	}
}

func ts(t time.Time) ref.Val { return types.Timestamp{Time: t} }

func avg(sum, n int64) int64 {
	if n == 0 {
		return 0
	}
	return sum / n
}

func dateVal(d schemas.Date) ref.Val {
	if d.IsZero() {
		return types.String("")
	}
	return types.String(d.String())
}

// ResolveName answers one variable. It is called only for the names an
// expression uses, once per use.
func (s *evalState) ResolveName(name string) (any, bool) {
	if strings.HasPrefix(name, "agg.") {
		i, ok := s.set.aggIndex[name[4:]]
		if !ok {
			return nil, false
		}
		return types.Int(s.aggValue(i)), true
	}
	c, ev := s.c, s.ev
	switch name {
	case "now":
		return s.bt(2, s.now), true

	case "event.id":
		return s.bs(3, ev.ID), true
	case "event.type":
		return s.bs(4, string(ev.Type)), true
	case "event.source":
		if ev.Source == schemas.SourceUnknown && ev.Type != "" {
			return s.bs(5, "rules"), true
		}
		if ev.Type == "" {
			return s.bs(6, ""), true
		}
		return s.bs(7, ev.Source.String()), true
	case "event.time":
		return s.bt(8, ev.Time), true
	case "event.session_id":
		return s.bs(9, ev.SessionID), true
	case "event.product_id":
		return s.bs(10, ev.ProductID), true
	case "event.quantity":
		return s.bi(11, int64(ev.Quantity)), true
	case "event.price":
		return s.bi(12, ev.Price.Minor), true
	case "event.device":
		return s.bs(13, ev.Device), true
	case "event.country":
		return s.bs(14, ev.Country), true
	case "event.order_id":
		return s.bs(15, ev.OrderID), true
	case "event.amount":
		return s.bi(16, ev.Amount.Minor), true
	case "event.currency":
		return s.bs(17, s.cur), true
	case "event.items":
		return s.bi(18, int64(len(ev.Items))), true
	case "event.payment_method":
		return s.bs(19, ev.PaymentMethod), true
	case "event.card_fingerprint":
		return s.bs(20, ev.CardFingerprint), true
	case "event.coupon_id":
		return s.bs(21, ev.CouponID), true
	case "event.coupon_expiry":
		return s.bt(22, ev.CouponExpiry), true
	case "event.service_date":
		return dateVal(ev.ServiceDate), true
	case "event.contract_end":
		return dateVal(ev.ContractEnd), true
	case "event.properties":
		if ev.Properties == nil {
			return types.NewStringStringMap(types.DefaultTypeAdapter, map[string]string{}), true
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, ev.Properties), true

	case "customer.id":
		return s.bs(23, string(c.ID)), true
	case "customer.first_seen":
		return s.bt(24, c.FirstSeen), true
	case "customer.last_seen":
		if s.beforeMode {
			return s.bt(25, s.pre.lastSeen), true
		}
		return s.bt(26, c.LastSeen), true
	case "customer.events":
		if s.beforeMode {
			return s.bi(27, s.pre.events), true
		}
		return s.bi(28, c.Events), true
	case "customer.purchases":
		if s.beforeMode {
			return s.bi(29, s.pre.purchases), true
		}
		return s.bi(30, c.Purchases), true
	case "customer.spend":
		if s.beforeMode {
			return s.bi(31, s.pre.spend), true
		}
		return s.bi(32, s.spend), true
	case "customer.tx_count":
		if s.beforeMode {
			return s.bi(33, s.pre.txCount), true
		}
		return s.bi(34, s.txCnt), true
	case "customer.tx_sum":
		if s.beforeMode {
			return s.bi(35, s.pre.txSum), true
		}
		return s.bi(36, s.txSum), true
	case "customer.tx_avg":
		if s.beforeMode {
			return s.bi(37, avg(s.pre.txSum, s.pre.txCount)), true
		}
		return s.bi(38, avg(s.txSum, s.txCnt)), true
	case "customer.spend_by_currency":
		m := make(map[string]int64, len(c.Spend))
		for _, sp := range c.Spend {
			m[sp.Currency] = sp.Minor
		}
		return types.DefaultTypeAdapter.NativeToValue(m), true
	case "customer.last_purchase_at":
		return s.bt(39, c.LastPurchaseAt), true
	case "customer.last_seen_by_type":
		m := make(map[string]time.Time, len(c.Seen))
		for _, st := range c.Seen {
			m[string(st.Type)] = st.At
		}
		return types.DefaultTypeAdapter.NativeToValue(m), true
	case "customer.cart.size":
		if s.beforeMode {
			return s.bi(40, int64(s.pre.cartSize)), true
		}
		return s.bi(41, int64(len(c.Cart.Items))), true
	case "customer.cart.quantity":
		var q int64
		for _, it := range c.Cart.Items {
			q += int64(it.Quantity)
		}
		return s.bi(42, q), true
	case "customer.cart.value":
		return s.bi(43, c.Cart.Value().Minor), true
	case "customer.cart.currency":
		return s.bs(44, c.Cart.Value().Currency), true
	case "customer.cart.products":
		// Records are reused across customers, hence the ID too.
		if s.cartProducts == nil || s.cartProductsFor != c || s.cartProductsID != c.ID ||
			s.cartProductsEv != c.Cart.LastEvent || s.cartProductsN != len(c.Cart.Items) {
			ps := make([]string, len(c.Cart.Items))
			for i, it := range c.Cart.Items {
				ps[i] = it.ProductID
			}
			s.cartProducts = types.NewStringList(types.DefaultTypeAdapter, ps)
			s.cartProductsFor, s.cartProductsID, s.cartProductsEv, s.cartProductsN = c, c.ID, c.Cart.LastEvent, len(c.Cart.Items)
		}
		return s.cartProducts, true
	case "customer.cart.last_event":
		return s.bs(45, c.Cart.LastEvent), true
	case "customer.cart.updated_at":
		return s.bt(46, c.Cart.UpdatedAt), true
	case "customer.birthday":
		return dateVal(c.Profile.Birthday), true
	case "customer.signup_date":
		return dateVal(c.Profile.SignupDate), true
	case "customer.contract_end":
		return dateVal(c.Profile.ContractEnd), true
	case "customer.time_zone":
		return s.bs(47, c.Profile.TimeZone), true
	case "customer.country":
		return s.bs(48, c.Profile.Country), true
	case "customer.profile_updated_at":
		return s.bt(49, c.ProfileUpdatedAt), true
	case "customer.opt_ins":
		m := make(map[string]bool, len(c.Profile.OptIns))
		for ch, ok := range c.Profile.OptIns {
			m[string(ch)] = ok
		}
		return types.DefaultTypeAdapter.NativeToValue(m), true
	case "customer.r":
		return s.bi(50, int64(c.RFM.R)), true
	case "customer.f":
		return s.bi(51, int64(c.RFM.F)), true
	case "customer.m":
		return s.bi(52, int64(c.RFM.M)), true
	case "customer.segment":
		if s.beforeMode {
			return s.bs(53, s.pre.segment), true
		}
		return s.bs(54, c.RFM.Segment), true

	case "before.events":
		return s.bi(55, s.pre.events), true
	case "before.purchases":
		return s.bi(56, s.pre.purchases), true
	case "before.spend":
		return s.bi(57, s.pre.spend), true
	case "before.tx_count":
		return s.bi(58, s.pre.txCount), true
	case "before.tx_sum":
		return s.bi(59, s.pre.txSum), true
	case "before.tx_avg":
		return s.bi(60, avg(s.pre.txSum, s.pre.txCount)), true
	case "before.last_seen":
		return s.bt(61, s.pre.lastSeen), true
	case "before.segment":
		return s.bs(62, s.pre.segment), true
	case "before.cart.size":
		return s.bi(63, int64(s.pre.cartSize)), true

	case "seq.key":
		if s.run == nil {
			return s.bs(64, ""), true
		}
		return s.bs(65, s.run.Key), true
	case "seq.occurrence":
		if s.run == nil {
			return s.bs(66, ""), true
		}
		return s.bs(67, s.run.Occurrence), true
	case "seq.stage":
		if s.run == nil {
			return s.bi(68, 0), true
		}
		return s.bi(69, int64(s.run.Stage)), true
	case "seq.started_at":
		if s.run == nil {
			return s.bt(70, time.Time{}), true
		}
		return s.bt(71, s.run.StartedAt), true
	}
	return nil, false
}

func (s *evalState) bs(i int, v string) ref.Val {
	c := &s.strs[i]
	if c.v == nil || c.s != v {
		c.s, c.v = v, types.String(v)
	}
	return c.v
}

func (s *evalState) bi(i int, v int64) ref.Val {
	c := &s.ints[i]
	if c.v == nil || c.i != v {
		c.i, c.v = v, types.Int(v)
	}
	return c.v
}

func (s *evalState) bt(i int, t time.Time) ref.Val {
	c := &s.times[i]
	if c.v == nil || c.t != t {
		c.t, c.v = t, types.Timestamp{Time: t}
	}
	return c.v
}
