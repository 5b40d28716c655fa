package rules

import (
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/triggerd/triggerd/schemas"
)

// The policy section of a rules file:
//
//	policy:
//	  exempt: {families: [anomaly, transactional], kinds: []}
//	  consent: opt_in            # opt_in (default) | opt_out
//	  quiet_hours: {from: "21:00", to: "08:00"}
//	  stop_after: {unanswered: 5, engagement: [email_open, email_click, push_open, page_view, purchase]}
//	  caps:
//	    - {name: email_7d, channel: email, max: 2, window: 7d, segments: {champions: 4}}
//	    - {name: interest_7d, rule: product_interest, max: 1, window: 7d}
//	    - {name: all_7d, max: 5, window: 7d}   # no channel, no rule: every marketing trigger
//
// and a rule's own settings:
//
//	contact: {quiet_hours: drop, max_delay: 12h}   # defaults: defer, the rule's expiry

func (c *compiler) policy(n *yaml.Node, s *Set) *policy {
	f := c.fields(n, "policy", "exempt", "consent", "quiet_hours", "stop_after", "caps")
	p := &policy{exemptFamilies: map[Family]bool{}, exemptKinds: map[string]bool{}}
	if en := f["exempt"]; en != nil {
		ef := c.fields(en, "policy.exempt", "families", "kinds")
		for _, it := range c.list(ef["families"], "exempt.families") {
			fam, ok := c.scalar(it, "family")
			if !ok {
				continue
			}
			if !families[Family(fam)] {
				c.errorf(it, "exempt.families: %q is not transactional, behavioral, recurring, threshold or anomaly", fam)
			}
			p.exemptFamilies[Family(fam)] = true
		}
		kinds := map[string]bool{}
		for _, r := range s.rules {
			kinds[r.kind] = true
		}
		for _, it := range c.list(ef["kinds"], "exempt.kinds") {
			k, ok := c.scalar(it, "kind")
			if !ok {
				continue
			}
			if !kinds[k] {
				c.errorf(it, "exempt.kinds: no rule has kind %q", k)
			}
			p.exemptKinds[k] = true
		}
	} else {
		// Risk and transactional triggers are never capped or deferred
		// unless the file says otherwise.
		p.exemptFamilies[Anomaly], p.exemptFamilies[Transactional] = true, true
	}
	switch v := c.str(f["consent"], "consent"); v {
	case "", "opt_in":
		p.consent = consentOptIn
	case "opt_out":
		p.consent = consentOptOut
	default:
		c.errorf(f["consent"], "consent: %q is not opt_in or opt_out", v)
	}
	if qn := f["quiet_hours"]; qn != nil {
		qf := c.fields(qn, "policy.quiet_hours", "from", "to")
		from, ok1 := c.clock(qf["from"], "quiet_hours.from", qn)
		to, ok2 := c.clock(qf["to"], "quiet_hours.to", qn)
		if ok1 && ok2 {
			if from == to {
				c.errorf(qn, "quiet_hours: from and to are the same time")
			}
			p.quiet = &quietHours{from: from, to: to}
		}
	}
	if sn := f["stop_after"]; sn != nil {
		sf := c.fields(sn, "policy.stop_after", "unanswered", "engagement")
		p.stopAfter = int32(c.integer(sf["unanswered"], "stop_after.unanswered", 0))
		if p.stopAfter < 1 {
			c.errorf(sn, "stop_after.unanswered must be >= 1 (marketing triggers in a row without engagement)")
		}
		if sf["engagement"] == nil {
			c.errorf(sn, "stop_after.engagement: list the event types that count as engagement")
		}
		p.engagement = map[schemas.EventType]bool{}
		for _, t := range c.eventTypes(sf["engagement"], "stop_after.engagement") {
			p.engagement[t] = true
		}
	}
	var labels map[string]bool
	if s.segments != nil {
		labels = map[string]bool{}
		for _, l := range s.segments.labels {
			labels[l.name] = true
		}
	}
	names := map[string]bool{}
	for _, cn := range c.list(f["caps"], "caps") {
		cf := c.fields(cn, "a cap", "name", "channel", "rule", "max", "window", "segments")
		cp := capSpec{name: c.str(cf["name"], "name"), channel: schemas.Channel(c.str(cf["channel"], "channel")),
			rule: schemas.RuleID(c.str(cf["rule"], "rule"))}
		if !idPattern.MatchString(cp.name) {
			c.errorf(cn, "cap name %q: required; use lower case letters, digits and _", cp.name)
		} else if names[cp.name] {
			c.errorf(cf["name"], "cap %q defined twice", cp.name)
		}
		names[cp.name] = true
		if cp.rule != "" && s.byID[cp.rule] == nil {
			c.errorf(cf["rule"], "cap %s: no rule %q", cp.name, cp.rule)
		}
		if cf["max"] == nil {
			c.errorf(cn, "cap %s: max is required", cp.name)
		}
		cp.max = int(c.integer(cf["max"], "max", 0))
		if cp.max < 0 {
			c.errorf(cf["max"], "cap %s: max must be >= 0", cp.name)
		}
		cp.window = c.duration(cf["window"], "window", 0)
		if cp.window <= 0 {
			c.errorf(keyNode(cn, "window"), "cap %s: window must be > 0", cp.name)
		}
		if sn := cf["segments"]; sn != nil {
			if sn.Kind != yaml.MappingNode {
				c.errorf(sn, "cap %s: segments must map a segment label to its max", cp.name)
			} else {
				cp.segments = map[string]int{}
				for i := 0; i+1 < len(sn.Content); i += 2 {
					k, v := sn.Content[i], sn.Content[i+1]
					if labels == nil {
						c.errorf(k, "cap %s: segment %q, but the rules file has no segments section", cp.name, k.Value)
					} else if !labels[k.Value] {
						c.errorf(k, "cap %s: %q is not a segment label", cp.name, k.Value)
					}
					m := int(c.integer(v, "segment max", 0))
					if m < 0 {
						c.errorf(v, "cap %s: max must be >= 0", cp.name)
					}
					cp.segments[k.Value] = m
				}
			}
		}
		p.maxWindow = max(p.maxWindow, cp.window)
		p.caps = append(p.caps, cp)
	}
	return p
}

// clock parses "HH:MM" into minutes of the day.
func (c *compiler) clock(n *yaml.Node, what string, parent *yaml.Node) (int, bool) {
	if n == nil {
		c.errorf(parent, "%s is required (HH:MM, local time)", what)
		return 0, false
	}
	s := c.str(n, what)
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		c.errorf(n, "%s: %q is not a time of day HH:MM", what, s)
		return 0, false
	}
	return hh*60 + mm, true
}

// ruleContact compiles a rule's contact settings; expiry is the default
// maximum delay (a trigger past its expiry would be dropped by the sender
// anyway).
func (c *compiler) ruleContact(n *yaml.Node, expiry time.Duration) ruleContact {
	rc := ruleContact{maxDelay: expiry}
	if n == nil {
		return rc
	}
	f := c.fields(n, "contact", "quiet_hours", "max_delay")
	switch v := c.str(f["quiet_hours"], "quiet_hours"); v {
	case "", "defer":
	case "drop":
		rc.quietDrop = true
	default:
		c.errorf(f["quiet_hours"], "contact.quiet_hours: %q is not defer or drop", v)
	}
	rc.maxDelay = c.duration(f["max_delay"], "max_delay", expiry)
	if rc.maxDelay <= 0 {
		c.errorf(f["max_delay"], "contact.max_delay must be > 0")
	}
	return rc
}
