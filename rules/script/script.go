package script

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
)

// Start is the virtual clock's initial time.
var Start = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// Runner holds the state of one script: the rule set, a virtual clock, the
// customers and the pending timers. It stands in for the processor: it
// applies the rules' actions the way the processor does (cancel, schedule,
// emit) and fires timers in the order the state store does (due time, then
// customer, then timer ID).
type Runner struct {
	set       *rules.Set
	now       time.Time
	customers map[schemas.CustomerID]*schemas.Customer
	timers    map[rules.TimerRef]schemas.Timer
	seq       int
	a         rules.Actions
}

// New returns a runner for set with the clock at Start.
func New(set *rules.Set) *Runner {
	return &Runner{set: set, now: Start, customers: map[schemas.CustomerID]*schemas.Customer{},
		timers: map[rules.TimerRef]schemas.Timer{}}
}

// Do runs one directive and returns its output (ending in a newline).
func (r *Runner) Do(cmd string, args []datadriven.CmdArg, input string) (string, error) {
	var out strings.Builder
	var err error
	switch cmd {
	case "rules":
		err = r.rules(args, input, &out)
	case "clock":
		if len(args) != 1 {
			return "", errors.New("clock TIME")
		}
		var t time.Time
		if t, err = time.Parse(time.RFC3339, args[0].Key); err == nil {
			if t.Before(r.now) {
				return "", fmt.Errorf("clock %s is before the current time %s", t.Format(time.RFC3339), r.now.Format(time.RFC3339))
			}
			r.advance(t, &out)
		}
	case "event":
		err = r.event(args, &out)
	case "profile":
		err = r.profile(args, &out)
	case "advance":
		if len(args) != 1 {
			return "", errors.New("advance DURATION")
		}
		var d time.Duration
		if d, err = rules.ParseDuration(args[0].Key); err == nil {
			if d < 0 {
				return "", errors.New("advance: the clock only moves forward")
			}
			r.advance(r.now.Add(d), &out)
		}
	case "timers":
		r.listTimers(args, &out)
	case "state":
		if len(args) != 1 {
			return "", errors.New("state CUSTOMER")
		}
		r.state(schemas.CustomerID(args[0].Key), &out)
	default:
		return "", fmt.Errorf("unknown directive %q", cmd)
	}
	if err != nil {
		return "", err
	}
	if out.Len() == 0 {
		return "ok\n", nil
	}
	return out.String(), nil
}

func (r *Runner) rules(args []datadriven.CmdArg, input string, out *strings.Builder) error {
	var s *rules.Set
	var err error
	switch {
	case len(args) == 1 && args[0].Key == "example":
		s, err = rules.ExampleSet()
	case len(args) == 1 && args[0].Key == "example-without-policy":
		s, err = rules.ExampleSetWithoutPolicy()
	case len(args) == 1 && args[0].Key == "cart-only":
		s, err = rules.CartOnly(time.Hour, 24*time.Hour)
	case len(args) == 0:
		s, err = rules.Parse("inline", []byte(input))
	default:
		return errors.New("rules [example|example-without-policy|cart-only], or the YAML as input")
	}
	if err != nil {
		// A bad file is reported and the running rules stay, as in
		// the processor.
		fmt.Fprintln(out, err)
		return nil
	}
	r.set = s
	return nil
}

func (r *Runner) customer(id schemas.CustomerID) *schemas.Customer {
	c := r.customers[id]
	if c == nil {
		c = &schemas.Customer{ID: id}
		r.customers[id] = c
	}
	return c
}

// parseTime reads an absolute RFC 3339 time, or a duration relative to the
// clock (+3d, -5m).
func (r *Runner) parseTime(s string) (time.Time, error) {
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		d, err := rules.ParseDuration(s)
		return r.now.Add(d), err
	}
	return time.Parse(time.RFC3339, s)
}

func sourceOf(t schemas.EventType) schemas.Source {
	switch t {
	case schemas.Purchase, schemas.Refund, schemas.Cancellation, schemas.CouponIssued, schemas.CouponRedeemed:
		return schemas.SourceTransaction
	case schemas.ProfileUpdate, schemas.ProfileErase, "profile_confirmed":
		return schemas.SourceProfile
	}
	return schemas.SourceClickstream
}

func (r *Runner) event(args []datadriven.CmdArg, out *strings.Builder) error {
	if len(args) < 2 {
		return errors.New("event CUSTOMER TYPE [key=value...]")
	}
	r.seq++
	ev := schemas.Event{ID: "e" + strconv.Itoa(r.seq), Customer: schemas.CustomerID(args[0].Key),
		Type: schemas.EventType(args[1].Key), Time: r.now}
	ev.Source = sourceOf(ev.Type)
	currency := "EUR"
	var price, amount int64
	hasPrice, hasAmount := false, false
	for _, a := range args[2:] {
		if len(a.Vals) != 1 {
			return fmt.Errorf("event: %s needs one value (key=value)", a.Key)
		}
		v := a.Vals[0]
		var err error
		switch k := a.Key; {
		case k == "id":
			ev.ID = v
		case k == "at":
			ev.Time, err = r.parseTime(v)
		case k == "product":
			ev.ProductID = v
		case k == "qty":
			var n int
			n, err = strconv.Atoi(v)
			ev.Quantity = int32(n)
		case k == "price":
			price, err = strconv.ParseInt(v, 10, 64)
			hasPrice = true
		case k == "amount":
			amount, err = strconv.ParseInt(v, 10, 64)
			hasAmount = true
		case k == "currency":
			currency = v
		case k == "order":
			ev.OrderID = v
		case k == "country":
			ev.Country = v
		case k == "payment":
			ev.PaymentMethod = v
		case k == "card":
			ev.CardFingerprint = v
		case k == "coupon":
			ev.CouponID = v
		case k == "expiry":
			ev.CouponExpiry, err = r.parseTime(v)
		case k == "service_date":
			ev.ServiceDate, err = schemas.ParseDate(v)
		case k == "contract_end":
			ev.ContractEnd, err = schemas.ParseDate(v)
		case k == "session":
			ev.SessionID = v
		case k == "device":
			ev.Device = v
		case k == "source":
			switch v {
			case "clickstream":
				ev.Source = schemas.SourceClickstream
			case "transaction":
				ev.Source = schemas.SourceTransaction
			case "profile":
				ev.Source = schemas.SourceProfile
			default:
				err = fmt.Errorf("unknown source %q", v)
			}
		case strings.HasPrefix(k, "prop."):
			if ev.Properties == nil {
				ev.Properties = map[string]string{}
			}
			ev.Properties[strings.TrimPrefix(k, "prop.")] = v
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return fmt.Errorf("event: %s=%s: %w", a.Key, v, err)
		}
	}
	if hasPrice {
		ev.Price = schemas.Money{Minor: price, Currency: currency}
	}
	if ev.Source == schemas.SourceTransaction && (ev.Type == schemas.Purchase || hasAmount) {
		if !hasAmount {
			amount = 1000
		}
		ev.Amount = schemas.Money{Minor: amount, Currency: currency}
		if ev.Type == schemas.Purchase && ev.OrderID == "" {
			ev.OrderID = "o-" + ev.ID
		}
	}
	r.apply(&ev, out)
	return nil
}

func (r *Runner) profile(args []datadriven.CmdArg, out *strings.Builder) error {
	if len(args) < 1 {
		return errors.New("profile CUSTOMER [key=value...]")
	}
	r.seq++
	ev := schemas.Event{ID: "e" + strconv.Itoa(r.seq), Customer: schemas.CustomerID(args[0].Key),
		Type: schemas.ProfileUpdate, Source: schemas.SourceProfile, Time: r.now}
	p := &ev.Profile
	for _, a := range args[1:] {
		if len(a.Vals) != 1 {
			return fmt.Errorf("profile: %s needs one value (key=value)", a.Key)
		}
		v := a.Vals[0]
		var err error
		switch a.Key {
		case "id":
			ev.ID = v
		case "at":
			ev.Time, err = r.parseTime(v)
		case "type":
			ev.Type = schemas.EventType(v)
		case "birthday":
			p.Birthday, err = schemas.ParseDate(v)
		case "signup":
			p.SignupDate, err = schemas.ParseDate(v)
		case "contract_end":
			p.ContractEnd, err = schemas.ParseDate(v)
		case "tz":
			p.TimeZone = v
		case "country":
			p.Country = v
		case "optin", "optout":
			if p.OptIns == nil {
				p.OptIns = map[schemas.Channel]bool{}
			}
			p.OptIns[schemas.Channel(v)] = a.Key == "optin"
		default:
			err = fmt.Errorf("unknown key %q", a.Key)
		}
		if err != nil {
			return fmt.Errorf("profile: %s=%s: %w", a.Key, v, err)
		}
	}
	r.apply(&ev, out)
	return nil
}

// apply runs one event through the rules as the processor does: the
// decoders' validation and the catalogue check (dead letters), the rules,
// then the actions.
func (r *Runner) apply(ev *schemas.Event, out *strings.Builder) {
	if err := schemas.ValidateEvent(ev); err != nil {
		var de *schemas.DecodeError
		if errors.As(err, &de) {
			fmt.Fprintf(out, "dead-letter %s %s %s reason=%s field=%s\n", ev.Customer, ev.ID, ev.Type, de.Reason, dash(de.Field))
			return
		}
	}
	if !r.set.Accepts(ev.Type) {
		fmt.Fprintf(out, "dead-letter %s %s %s reason=unknown_type\n", ev.Customer, ev.ID, ev.Type)
		return
	}
	r.a.Reset()
	r.set.OnEvent(r.customer(ev.Customer), ev, &r.a)
	if r.a.Duplicate {
		fmt.Fprintf(out, "duplicate %s %s\n", ev.Customer, ev.ID)
		return
	}
	r.carryOut(out)
}

func (r *Runner) carryOut(out *strings.Builder) {
	for _, err := range r.a.Errors {
		fmt.Fprintf(out, "error %v\n", err)
	}
	for _, ref := range r.a.Cancel {
		delete(r.timers, ref)
	}
	for _, t := range r.a.Schedule {
		r.timers[rules.TimerRef{Customer: t.Customer, ID: t.ID}] = t
	}
	for i := range r.a.Emit {
		out.WriteString(FormatTrigger(&r.a.Emit[i]))
		out.WriteByte('\n')
	}
	for i := range r.a.Suppress {
		out.WriteString(FormatSuppression(&r.a.Suppress[i]))
		out.WriteByte('\n')
	}
}

// FormatSuppression renders a suppression or deferral on one line: the
// action, customer, rule, version, stage, channel, due time, reason, policy
// and (deferred) the release time.
func FormatSuppression(s *schemas.Suppression) string {
	tr := &s.Trigger
	line := fmt.Sprintf("%s %s %s v%d stage=%d %s due=%s reason=%s policy=%s", s.Action, tr.Customer, tr.Rule, tr.RuleVersion,
		tr.Stage, tr.Channel, fmtTime(tr.DueAt), s.Reason, s.Policy)
	if !s.DeferredTo.IsZero() {
		line += " until=" + fmtTime(s.DeferredTo)
	}
	return line
}

// advance fires, in due order, every timer due up to until, then sets the
// clock to until. The clock passes each due time on the way, so a timer
// fires at its due time, or at the clock's time if it was due before
// (Set.OnTimersAt). The timers of one customer due at the same instant are
// evaluated together, as the processor does, so the contact policy sees
// them compete.
func (r *Runner) advance(until time.Time, out *strings.Builder) {
	var group []schemas.Timer
	for {
		var next *schemas.Timer
		for _, t := range r.timers {
			if t.Due.After(until) {
				continue
			}
			if next == nil || timerLess(&t, next) {
				t := t
				next = &t
			}
		}
		if next == nil {
			break
		}
		group = append(group[:0], *next)
		for _, t := range r.timers {
			if t.Customer == next.Customer && t.Due.Equal(next.Due) && t.ID != next.ID {
				group = append(group, t)
			}
		}
		sort.Slice(group, func(i, j int) bool { return timerLess(&group[i], &group[j]) })
		for _, t := range group {
			delete(r.timers, rules.TimerRef{Customer: t.Customer, ID: t.ID})
		}
		if next.Due.After(r.now) {
			r.now = next.Due
		}
		r.a.Reset()
		// A timer due before the clock (scheduled by an event stamped
		// in the past) fires now, late, as the processor fires it at
		// its watermark.
		r.set.OnTimersAt(r.customer(next.Customer), group, r.now, &r.a)
		r.carryOut(out)
	}
	r.now = until
}

// timerLess is the firing order of the state store: due time, customer, ID.
func timerLess(a, b *schemas.Timer) bool {
	if !a.Due.Equal(b.Due) {
		return a.Due.Before(b.Due)
	}
	if a.Customer != b.Customer {
		return a.Customer < b.Customer
	}
	return a.ID < b.ID
}

func (r *Runner) listTimers(args []datadriven.CmdArg, out *strings.Builder) {
	var ts []schemas.Timer
	for _, t := range r.timers {
		if len(args) == 0 || string(t.Customer) == args[0].Key {
			ts = append(ts, t)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return timerLess(&ts[i], &ts[j]) })
	for _, t := range ts {
		fmt.Fprintf(out, "timer %s %s stage=%d due=%s occurrence=%s\n", t.Customer, t.ID, t.Stage, fmtTime(t.Due), t.Occurrence)
	}
	if len(ts) == 0 {
		out.WriteString("no timers\n")
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") {
		return strconv.Quote(s)
	}
	return s
}

// FormatTrigger renders a trigger on one line: customer, rule, version,
// stage, channel, due time, then (when set) kind, priority, items and value,
// and the attributes sorted by name.
func FormatTrigger(tr *schemas.Trigger) string {
	var b strings.Builder
	fmt.Fprintf(&b, "trigger %s %s v%d stage=%d %s due=%s", tr.Customer, tr.Rule, tr.RuleVersion, tr.Stage, tr.Channel, fmtTime(tr.DueAt))
	if tr.Kind != string(tr.Rule) {
		fmt.Fprintf(&b, " kind=%s", tr.Kind)
	}
	if len(tr.Items) > 0 || tr.Value != (schemas.Money{}) {
		fmt.Fprintf(&b, " items=%d value=%s", len(tr.Items), quote(tr.Value.String()))
	}
	keys := make([]string, 0, len(tr.Attributes))
	for k := range tr.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, quote(tr.Attributes[k]))
	}
	return b.String()
}

func (r *Runner) state(id schemas.CustomerID, out *strings.Builder) {
	c := r.customers[id]
	if c == nil {
		fmt.Fprintf(out, "customer %s unknown\n", id)
		return
	}
	fmt.Fprintf(out, "customer %s events=%d purchases=%d first_seen=%s last_seen=%s\n", c.ID, c.Events, c.Purchases, fmtTime(c.FirstSeen), fmtTime(c.LastSeen))
	if len(c.Cart.Items) > 0 {
		fmt.Fprintf(out, "cart lines=%d value=%s\n", len(c.Cart.Items), quote(c.Cart.Value().String()))
	}
	if p := c.Profile; !p.Birthday.IsZero() || !p.SignupDate.IsZero() || p.TimeZone != "" || !p.ContractEnd.IsZero() {
		fmt.Fprintf(out, "profile birthday=%s signup=%s contract_end=%s tz=%s\n", dash(p.Birthday.String()), dash(p.SignupDate.String()), dash(p.ContractEnd.String()), dash(p.TimeZone))
	}
	for _, tx := range c.Tx {
		fmt.Fprintf(out, "tx %s count=%d sum=%d\n", tx.Currency, tx.Count, tx.Sum)
	}
	if c.RFM != (schemas.RFM{}) {
		fmt.Fprintf(out, "rfm r=%d f=%d m=%d segment=%s\n", c.RFM.R, c.RFM.F, c.RFM.M, dash(c.RFM.Segment))
	}
	for _, ag := range c.Aggregates {
		fmt.Fprintf(out, "aggregate %s entries=%d\n", ag.Name, len(ag.Entries))
	}
	for _, run := range c.Runs {
		dues := make([]string, len(run.Due))
		for i, d := range run.Due {
			dues[i] = fmtTime(d)
		}
		fmt.Fprintf(out, "run %s key=%s stage=%d occurrence=%s started=%s due=[%s]\n", run.Rule, dash(run.Key), run.Stage,
			dash(run.Occurrence), fmtTime(run.StartedAt), strings.Join(dues, " "))
	}
	for _, m := range c.Marks {
		fmt.Fprintf(out, "mark %s key=%s at=%s expires=%s\n", m.Rule, dash(m.Key), fmtTime(m.At), fmtTime(m.Expires))
	}
	if len(c.Recent) > 0 {
		fmt.Fprintf(out, "recent_ids=%d\n", len(c.Recent))
	}
	for _, ct := range c.Contacts {
		fmt.Fprintf(out, "contact %s %s at=%s\n", ct.Channel, ct.Rule, fmtTime(ct.At))
	}
	if c.Unanswered > 0 {
		fmt.Fprintf(out, "unanswered=%d\n", c.Unanswered)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Directive is one directive of a script file and its expected output.
type Directive struct {
	Line     int
	Cmd      string
	Args     []datadriven.CmdArg
	Input    string
	Expected string
	Raw      string
}

// ParseFile reads a script in the datadriven format, for running without
// the testing package ("triggerd rules test"). Outputs end at a blank line;
// an output that contains blank lines is framed by "----" twice, as
// datadriven writes it.
func ParseFile(path string) ([]Directive, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses script text; name is used in errors.
func Parse(name string, data []byte) ([]Directive, error) {
	var out []Directive
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for i := 0; i < len(lines); {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			i++
			continue
		}
		d := Directive{Line: i + 1, Raw: l}
		cmd, args, err := datadriven.ParseLine(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, i+1, err)
		}
		d.Cmd, d.Args = cmd, args
		i++
		var in []string
		for i < len(lines) && lines[i] != "----" {
			in = append(in, lines[i])
			i++
		}
		if i >= len(lines) {
			return nil, fmt.Errorf("%s:%d: directive %q has no ---- line", name, d.Line, l)
		}
		i++ // ----
		if len(in) > 0 {
			d.Input = strings.Join(in, "\n") + "\n"
		}
		var exp []string
		if i < len(lines) && lines[i] == "----" {
			i++
			for i+1 < len(lines) && !(lines[i] == "----" && lines[i+1] == "----") {
				exp = append(exp, lines[i])
				i++
			}
			i += 2
		} else {
			for i < len(lines) && lines[i] != "" {
				exp = append(exp, lines[i])
				i++
			}
		}
		if len(exp) > 0 {
			d.Expected = strings.Join(exp, "\n") + "\n"
		}
		out = append(out, d)
	}
	return out, nil
}
