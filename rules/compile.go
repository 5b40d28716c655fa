package rules

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/triggerd/triggerd/schemas"
)

// Load reads and compiles the rules file at path.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(path, data)
}

// Parse compiles a rules file. name is used in error positions. The error,
// if any, is a *LoadError listing every problem with its line and column.
func Parse(name string, data []byte) (*Set, error) {
	c := &compiler{parser: parser{file: name}}
	s := c.compile(data)
	if err := c.err(); err != nil {
		return nil, err
	}
	return s, nil
}

type compiler struct {
	parser
	env     *cel.Env
	catalog map[schemas.EventType]bool
	// noPolicy compiles the file as if it had no policy section (and
	// its rules no contact settings).
	noPolicy bool
}

var (
	idPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

func (c *compiler) compile(data []byte) *Set {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			c.errAt(line, 1, m[2])
		} else {
			c.errAt(1, 1, strings.TrimPrefix(msg, "yaml: "))
		}
		return nil
	}
	if len(doc.Content) == 0 {
		c.errAt(1, 1, "empty rules file")
		return nil
	}
	root := doc.Content[0]
	top := c.fields(root, "the rules file", "events", "defaults", "dedupe", "segments", "aggregates", "rules", "policy")
	s := &Set{name: c.file, byID: map[schemas.RuleID]*rule{}, byType: map[schemas.EventType]*typeRules{}}

	if n := top["events"]; n != nil {
		c.catalog = map[schemas.EventType]bool{}
		for _, it := range c.list(n, "events") {
			t, ok := c.scalar(it, "event type")
			if !ok {
				continue
			}
			if t == "" {
				c.errorf(it, "empty event type")
			}
			if c.catalog[schemas.EventType(t)] {
				c.errorf(it, "event type %q listed twice", t)
			}
			c.catalog[schemas.EventType(t)] = true
		}
		s.catalog = c.catalog
	}

	def := c.fields(top["defaults"], "defaults", "time_zone", "expiry", "priority", "channel")
	s.zones.defName = "UTC"
	if n := def["time_zone"]; n != nil {
		s.zones.defName = c.str(n, "time_zone")
	}
	loc, err := time.LoadLocation(s.zones.defName)
	if err != nil {
		c.errorf(def["time_zone"], "time_zone: unknown IANA zone %q", s.zones.defName)
		loc = time.UTC
	}
	s.zones.def = loc
	s.expiry = c.duration(def["expiry"], "expiry", 24*time.Hour)
	if s.expiry <= 0 {
		c.errorf(def["expiry"], "expiry must be > 0")
	}
	s.priority = int32(c.integer(def["priority"], "priority", 50))
	s.channel = schemas.Channel(c.str(def["channel"], "channel"))

	if n := top["dedupe"]; n != nil {
		d := c.fields(n, "dedupe", "window", "max_ids")
		s.dedupe.window = c.duration(d["window"], "window", 24*time.Hour)
		s.dedupe.max = int(c.integer(d["max_ids"], "max_ids", 64))
		if s.dedupe.window <= 0 {
			c.errorf(keyNode(n, "window"), "dedupe.window must be > 0")
		}
		if s.dedupe.max < 1 || s.dedupe.max > 10000 {
			c.errorf(keyNode(n, "max_ids"), "dedupe.max_ids must be between 1 and 10000")
		}
	}

	// Aggregate names first: the CEL environment declares agg.<name>.
	aggNode := top["aggregates"]
	var aggNames []string
	if aggNode != nil {
		if aggNode.Kind != yaml.MappingNode {
			c.errorf(aggNode, "aggregates must be a mapping of name to definition")
		} else {
			s.aggIndex = map[string]int{}
			for i := 0; i+1 < len(aggNode.Content); i += 2 {
				k := aggNode.Content[i]
				if !idPattern.MatchString(k.Value) {
					c.errorf(k, "aggregate name %q: use lower case letters, digits and _", k.Value)
				}
				if _, dup := s.aggIndex[k.Value]; dup {
					c.errorf(k, "aggregate %q defined twice", k.Value)
					continue
				}
				s.aggIndex[k.Value] = len(aggNames)
				aggNames = append(aggNames, k.Value)
			}
		}
	}
	env, err := newEnv(aggNames, &s.zones)
	if err != nil {
		c.errAt(1, 1, "building the expression environment: "+err.Error())
		return nil
	}
	c.env = env

	if n := top["segments"]; n != nil {
		s.segments = c.segments(n)
	}
	if aggNode != nil && aggNode.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(aggNode.Content); i += 2 {
			s.aggs = append(s.aggs, c.aggregate(aggNode.Content[i].Value, aggNode.Content[i+1]))
		}
	}

	rulesNode := top["rules"]
	if rulesNode == nil {
		c.errorf(root, "no rules: the file needs a rules list")
	}
	for _, rn := range c.list(rulesNode, "rules") {
		r := c.rule(rn, s)
		if r == nil {
			continue
		}
		if prev := s.byID[r.id]; prev != nil {
			c.errorf(keyNode(rn, "id"), "rule id %q used twice", r.id)
			continue
		}
		s.byID[r.id] = r
		s.rules = append(s.rules, r)
	}
	if n := top["policy"]; n != nil && !c.noPolicy {
		s.policy = c.policy(n, s)
	} else if !c.noPolicy {
		for _, rn := range c.list(rulesNode, "rules") {
			if rn.Kind == yaml.MappingNode && keyNode(rn, "contact") != rn {
				c.errorf(keyNode(rn, "contact"), "contact settings need a policy section in the rules file")
			}
		}
	}
	s.index()
	return s
}

// checkTypes reports event types that the catalogue does not declare.
func (c *compiler) checkTypes(n *yaml.Node, types []schemas.EventType) {
	if c.catalog == nil {
		return
	}
	items := c.list(n, "on")
	for i, t := range types {
		if t == SegmentChanged || c.catalog[t] {
			continue
		}
		at := n
		if i < len(items) {
			at = items[i]
		}
		c.errorf(at, "event type %q is not in the events catalogue", t)
	}
}

func (c *compiler) eventTypes(n *yaml.Node, what string) []schemas.EventType {
	var out []schemas.EventType
	for _, s := range c.strings(n, what) {
		out = append(out, schemas.EventType(s))
	}
	if n != nil && len(out) == 0 {
		c.errorf(n, "%s: list at least one event type", what)
	}
	c.checkTypes(n, out)
	return out
}

// expr compiles the CEL expression in scalar n and checks its type. It
// reports errors at their position inside the file.
func (c *compiler) expr(n *yaml.Node, what string, want *cel.Type) cel.Program {
	return c.exprIn(c.env, n, what, want)
}

func (c *compiler) exprIn(env *cel.Env, n *yaml.Node, what string, want *cel.Type) cel.Program {
	src, ok := c.scalar(n, what)
	if !ok {
		return nil
	}
	if strings.TrimSpace(src) == "" {
		c.errorf(n, "%s: empty expression", what)
		return nil
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			line, col := n.Line, n.Column
			// Some errors (the parser's recursion limit) have no
			// position in the expression: report the expression's.
			if e.Location != nil && e.Location.Line() >= 1 && e.Location.Column() >= 0 {
				line += e.Location.Line() - 1
				if e.Location.Line() == 1 {
					col += e.Location.Column()
					if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
						col++
					}
				} else {
					col = e.Location.Column() + 1
				}
				if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
					line++
				}
			}
			msg := e.Message
			for _, ns := range []string{"event", "customer", "before", "seq", "agg"} {
				if msg == "undeclared reference to '"+ns+"'" {
					msg += " (triggerd rules vars lists the variables; agg.NAME needs an aggregate NAME)"
				}
			}
			c.errAt(line, col, what+": "+msg)
		}
		return nil
	}
	if want != nil && !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
		c.errorf(n, "%s must be of type %s, is %s", what, want, ast.OutputType())
		return nil
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		c.errorf(n, "%s: %v", what, err)
		return nil
	}
	return prg
}

func (c *compiler) segments(n *yaml.Node) *segments {
	f := c.fields(n, "segments", "currency", "recency_days", "frequency", "monetary", "labels")
	sg := &segments{currency: c.str(f["currency"], "currency")}
	if sg.currency == "" {
		c.errorf(n, "segments.currency is required (monetary scores are in one currency)")
	}
	four := func(name string, ascending bool) [4]int64 {
		var out [4]int64
		items := c.list(f[name], name)
		if len(items) != 4 {
			c.errorf(keyNode(n, name), "segments.%s needs 4 thresholds (the borders between scores 1-5)", name)
			return out
		}
		for i, it := range items {
			out[i] = c.integer(it, name, 0)
			if i > 0 && out[i] <= out[i-1] {
				c.errorf(it, "segments.%s must be increasing", name)
			}
		}
		return out
	}
	sg.recency = four("recency_days", true)
	sg.frequency = four("frequency", true)
	sg.monetary = four("monetary", true)
	env, err := segmentEnv()
	if err != nil {
		c.errorf(n, "segments: %v", err)
		return sg
	}
	seen := map[string]bool{}
	for _, ln := range c.list(f["labels"], "labels") {
		lf := c.fields(ln, "segment label", "name", "when")
		name := c.str(lf["name"], "name")
		if !idPattern.MatchString(name) {
			c.errorf(ln, "segment label name %q: use lower case letters, digits and _", name)
		}
		if seen[name] {
			c.errorf(lf["name"], "segment label %q listed twice", name)
		}
		seen[name] = true
		if lf["when"] == nil {
			c.errorf(ln, "segment label %q needs a when condition over r, f, m", name)
			continue
		}
		if prg := c.exprIn(env, lf["when"], "when", cel.BoolType); prg != nil {
			sg.labels = append(sg.labels, segmentLabel{name: name, when: prg})
		}
	}
	if len(sg.labels) == 0 {
		c.errorf(n, "segments: list at least one label")
	}
	return sg
}

func (c *compiler) aggregate(name string, n *yaml.Node) *aggregate {
	f := c.fields(n, "aggregate "+name, "on", "where", "window", "max", "count", "sum", "distinct", "by")
	a := &aggregate{name: name, label: "aggregate " + name}
	if f["on"] == nil {
		c.errorf(n, "aggregate %s: on (the event types it counts) is required", name)
	}
	a.on = c.eventTypes(f["on"], "on")
	if f["where"] != nil {
		a.where = c.expr(f["where"], "where", cel.BoolType)
	}
	a.window = c.duration(f["window"], "window", 0)
	if a.window <= 0 {
		c.errorf(n, "aggregate %s: window must be > 0", name)
	}
	a.max = int(c.integer(f["max"], "max", 0))
	if a.max < 1 || a.max > 10000 {
		c.errorf(n, "aggregate %s: max (entries kept) must be between 1 and 10000", name)
	}
	kinds := 0
	if f["count"] != nil {
		kinds++
		a.kind = aggCount
		if !c.boolean(f["count"], "count") {
			c.errorf(f["count"], "count: write count: true")
		}
	}
	if n := f["sum"]; n != nil {
		kinds++
		a.kind, a.expr = aggSum, c.expr(n, "sum", cel.IntType)
	}
	if n := f["distinct"]; n != nil {
		kinds++
		a.kind, a.expr = aggDistinct, c.expr(n, "distinct", cel.StringType)
	}
	if n := f["by"]; n != nil {
		kinds++
		a.kind, a.expr = aggBy, c.expr(n, "by", cel.StringType)
	}
	if kinds != 1 {
		c.errorf(n, "aggregate %s: give exactly one of count, sum, distinct, by", name)
	}
	return a
}

var families = map[Family]bool{Transactional: true, Behavioral: true, Recurring: true, Threshold: true, Anomaly: true}

func (c *compiler) rule(n *yaml.Node, s *Set) *rule {
	f := c.fields(n, "a rule", "id", "description", "version", "family", "kind", "priority", "channel", "expiry",
		"payload", "attach", "on", "when", "once", "once_per", "sequence", "calendar", "silence", "threshold", "contact")
	r := &rule{}
	id := c.str(f["id"], "id")
	if !idPattern.MatchString(id) {
		c.errorf(n, "rule id %q: required; use lower case letters, digits and _", id)
	}
	r.id = schemas.RuleID(id)
	r.version = int32(c.integer(f["version"], "version", 0))
	if r.version < 1 {
		c.errorf(keyNode(n, "version"), "rule %s: version must be >= 1 (it goes into the trigger ID)", id)
	}
	r.family = Family(c.str(f["family"], "family"))
	if !families[r.family] {
		c.errorf(keyNode(n, "family"), "rule %s: family %q is not transactional, behavioral, recurring, threshold or anomaly", id, r.family)
	}
	r.kind = c.str(f["kind"], "kind")
	if r.kind == "" {
		r.kind = id
	}
	r.priority = int32(c.integer(f["priority"], "priority", int64(s.priority)))
	r.channel = schemas.Channel(c.str(f["channel"], "channel"))
	if r.channel == "" {
		r.channel = s.channel
	}
	r.expiry = c.duration(f["expiry"], "expiry", s.expiry)
	if r.expiry <= 0 {
		c.errorf(f["expiry"], "expiry must be > 0")
	}
	r.payload = c.payload(f["payload"])
	r.contact = c.ruleContact(f["contact"], r.expiry)
	if n := f["attach"]; n != nil {
		r.attach = c.str(n, "attach")
		if r.attach != "cart" && r.attach != "order" {
			c.errorf(n, "attach: %q is not cart or order", r.attach)
		}
	}

	starts := []string{}
	for _, k := range []string{"on", "sequence", "calendar", "silence", "threshold"} {
		if f[k] != nil {
			starts = append(starts, k)
		}
	}
	if len(starts) != 1 {
		c.errorf(n, "rule %s: give exactly one of on, sequence, calendar, silence, threshold (has %d)", id, len(starts))
		return r
	}
	if starts[0] != "on" {
		for _, k := range []string{"when", "once", "once_per"} {
			if f[k] != nil && starts[0] != "sequence" {
				c.errorf(keyNode(n, k), "rule %s: %s belongs to an on rule (or a sequence's start)", id, k)
			}
		}
	}
	needChannel := true
	switch starts[0] {
	case "on":
		r.start = startOn
		r.on = c.eventTypes(f["on"], "on")
		if f["when"] != nil {
			r.when = c.expr(f["when"], "when", cel.BoolType)
		}
		r.once = c.once(f["once"], f["once_per"])
	case "sequence":
		r.start = startSequence
		if f["when"] != nil || f["once"] != nil || f["once_per"] != nil {
			c.errorf(n, "rule %s: a sequence's when and once go under sequence.start", id)
		}
		r.seq, r.once = c.sequence(f["sequence"], r)
		needChannel = false
	case "calendar":
		r.start = startCalendar
		r.cal = c.calendar(f["calendar"])
	case "silence":
		r.start = startSilence
		r.sil = c.silence(f["silence"])
	case "threshold":
		r.start = startThreshold
		r.on, r.thr = c.threshold(f["threshold"])
	}
	if needChannel && r.channel == "" {
		c.errorf(n, "rule %s: channel is required (or defaults.channel)", id)
	}
	return r
}

func (c *compiler) payload(n *yaml.Node) []payloadField {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "payload must be a mapping of name to expression")
		return nil
	}
	var out []payloadField
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if prg := c.expr(n.Content[i+1], "payload "+k.Value, nil); prg != nil {
			out = append(out, payloadField{name: k.Value, prg: prg})
		}
	}
	return out
}

func (c *compiler) once(onceN, perN *yaml.Node) *once {
	switch {
	case onceN != nil && perN != nil:
		c.errorf(perN, "give once or once_per, not both")
	case onceN != nil:
		if c.boolean(onceN, "once") {
			return &once{}
		}
	case perN != nil:
		f := c.fields(perN, "once_per", "period", "key")
		o := &once{period: c.duration(f["period"], "period", 0)}
		if o.period <= 0 {
			c.errorf(perN, "once_per.period must be > 0")
		}
		if f["key"] != nil {
			o.key = c.expr(f["key"], "key", cel.StringType)
		}
		return o
	}
	return nil
}

func (c *compiler) sequence(n *yaml.Node, r *rule) (*sequence, *once) {
	f := c.fields(n, "sequence", "start", "exit", "stages")
	sq := &sequence{}
	st := c.fields(f["start"], "sequence.start", "on", "when", "key", "restart", "once", "once_per")
	if f["start"] == nil {
		c.errorf(n, "sequence.start is required")
	}
	sq.startOn = c.eventTypes(st["on"], "start.on")
	if st["on"] == nil && f["start"] != nil {
		c.errorf(f["start"], "sequence.start.on is required")
	}
	if st["when"] != nil {
		sq.startWhen = c.expr(st["when"], "start.when", cel.BoolType)
	}
	if st["key"] != nil {
		sq.key = c.expr(st["key"], "start.key", cel.StringType)
	}
	if st["restart"] != nil {
		sq.restart = c.boolean(st["restart"], "restart")
	}
	o := c.once(st["once"], st["once_per"])
	if o != nil && o.key != nil {
		c.errorf(st["once_per"], "a sequence's once_per uses the start key; drop once_per.key")
	}
	if ex := f["exit"]; ex != nil {
		ef := c.fields(ex, "sequence.exit", "on", "when")
		sq.exitOn = c.eventTypes(ef["on"], "exit.on")
		if ef["when"] != nil {
			sq.exitWhen = c.expr(ef["when"], "exit.when", cel.BoolType)
		}
		if ef["on"] == nil && ef["when"] == nil {
			c.errorf(ex, "sequence.exit needs on, when, or both")
		}
	}
	stages := c.list(f["stages"], "stages")
	if len(stages) == 0 {
		c.errorf(n, "sequence: list at least one stage")
	}
	for i, sn := range stages {
		sf := c.fields(sn, "a stage", "delay", "at", "when", "channel", "payload")
		var sg stage
		switch {
		case sf["delay"] != nil && sf["at"] != nil:
			c.errorf(sn, "stage %d: give delay or at, not both", i+1)
		case sf["delay"] != nil:
			sg.delay = c.duration(sf["delay"], "delay", 0)
			if sg.delay < 0 {
				c.errorf(sf["delay"], "stage %d: delay must be >= 0", i+1)
			}
		case sf["at"] != nil:
			sg.at = c.expr(sf["at"], "at", cel.TimestampType)
		default:
			c.errorf(sn, "stage %d: give delay (from the previous stage's due time) or at (a timestamp)", i+1)
		}
		if sf["when"] != nil {
			sg.when = c.expr(sf["when"], "when", cel.BoolType)
		}
		sg.channel = schemas.Channel(c.str(sf["channel"], "channel"))
		if sg.channel == "" {
			sg.channel = r.channel
		}
		if sg.channel == "" {
			c.errorf(sn, "stage %d: channel is required (on the stage, the rule or defaults)", i+1)
		}
		sg.payload = c.payload(sf["payload"])
		sq.stages = append(sq.stages, sg)
	}
	return sq, o
}

func (c *compiler) calendar(n *yaml.Node) *calendar {
	f := c.fields(n, "calendar", "date", "time", "offset", "every")
	cal := &calendar{date: c.str(f["date"], "date")}
	switch cal.date {
	case "birthday", "signup_date", "contract_end":
	default:
		c.errorf(keyNode(n, "date"), "calendar.date %q is not birthday, signup_date or contract_end", cal.date)
	}
	clock := "09:00"
	if f["time"] != nil {
		clock = c.str(f["time"], "time")
	}
	var err error
	if cal.hh, cal.mm, err = parseClock(clock); err != nil {
		c.errorf(f["time"], "calendar.time: %v", err)
	}
	if on := f["offset"]; on != nil {
		d := c.duration(on, "offset", 0)
		if d%(24*time.Hour) != 0 {
			c.errorf(on, "calendar.offset must be whole days (e.g. -60d)")
		}
		cal.offsetDays = int(d / (24 * time.Hour))
	}
	switch every := c.str(f["every"], "every"); every {
	case "year":
		cal.yearly = true
	case "once":
	default:
		c.errorf(keyNode(n, "every"), "calendar.every %q is not year or once", every)
	}
	return cal
}

func (c *compiler) silence(n *yaml.Node) *silence {
	f := c.fields(n, "silence", "on", "for")
	sl := &silence{}
	if on := f["on"]; on != nil && on.Kind == yaml.ScalarNode && on.Value == "any" {
		sl.any = true
	} else {
		sl.on = c.eventTypes(on, "on")
		if on == nil {
			c.errorf(n, "silence.on is required: event types, or any")
		}
	}
	sl.for_ = c.duration(f["for"], "for", 0)
	if sl.for_ <= 0 {
		c.errorf(n, "silence.for must be > 0")
	}
	return sl
}

func (c *compiler) threshold(n *yaml.Node) ([]schemas.EventType, *thresholdSpec) {
	f := c.fields(n, "threshold", "on", "value", "at_least", "key")
	on := c.eventTypes(f["on"], "on")
	if f["on"] == nil {
		c.errorf(n, "threshold.on is required")
	}
	t := &thresholdSpec{}
	if f["value"] == nil {
		c.errorf(n, "threshold.value is required")
	} else {
		t.value = c.expr(f["value"], "value", cel.IntType)
	}
	if f["at_least"] == nil {
		c.errorf(n, "threshold.at_least is required")
	}
	t.atLeast = c.integer(f["at_least"], "at_least", 0)
	if f["key"] != nil {
		t.key = c.expr(f["key"], "key", cel.StringType)
	}
	return on, t
}
