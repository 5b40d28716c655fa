package backtest

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Report compares what the baseline and the candidate rules did over
// [From, To): a trigger counts when its due time is in the range, a
// suppression or deferral when the contact policy decided it in the range.
type Report struct {
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	Approximate string     `json:"approximate"`
	Days        []string   `json:"days"`  // UTC dates of the range
	Rules       []string   `json:"rules"` // rule IDs seen on either side
	Baseline    Side       `json:"baseline"`
	Candidate   Side       `json:"candidate"`
	Differences Diff       `json:"differences"`
	Replay      ReplayInfo `json:"replay"`
}

// approximate says what a backtest cannot know; the report carries it.
const approximate = "The state as of the start of the range is rebuilt from the input records retained before it " +
	"(or from the warm-up); history older than the topics' retention is missing, so once-only marks, long windows " +
	"and caps reaching before the replay may decide differently near the start. Records are applied in event-time " +
	"order, so one that arrived late live is on time here. Deferred triggers released after the range are counted as deferrals only."

// Side is one rules file's results in the range.
type Side struct {
	Rules        string           `json:"rules"` // the rules file's name
	Triggers     int              `json:"triggers"`
	Suppressed   int              `json:"suppressed"`
	Deferred     int              `json:"deferred"`
	ByRule       map[string]int   `json:"by_rule"`
	ByStage      []StageCount     `json:"by_rule_stage_channel"`
	PerDay       map[string][]int `json:"per_day"` // rule -> triggers per day of Days
	Suppressions []PolicyCount    `json:"suppressions"`
	Cost         Cost             `json:"cost"`
	// The triggers and suppressions in the range, for tools and tests
	// (not in the JSON: the counts above summarise them).
	TriggerList     []schemas.Trigger     `json:"-"`
	SuppressionList []schemas.Suppression `json:"-"`
}

// StageCount counts triggers of one rule, stage and channel.
type StageCount struct {
	Rule    string `json:"rule"`
	Stage   int32  `json:"stage"`
	Channel string `json:"channel"`
	Count   int    `json:"count"`
}

// PolicyCount counts suppressions (or deferrals) by reason and policy.
type PolicyCount struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
	Policy string `json:"policy"`
	Count  int    `json:"count"`
}

// Cost is what a part of the run took.
type Cost struct {
	Events          int64   `json:"events"`
	DeadLetters     int64   `json:"dead_letters,omitempty"`
	WallSeconds     float64 `json:"wall_seconds"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
}

func (c *Cost) rate() {
	if c.WallSeconds > 0 {
		c.EventsPerSecond = float64(c.Events) / c.WallSeconds
	}
}

// ReplayInfo describes the replay as a whole.
type ReplayInfo struct {
	RecordsCopied map[string]int64 `json:"records_copied"` // by input topic
	Earliest      time.Time        `json:"earliest_event"` // the state is rebuilt from here
	WarmUp        string           `json:"warm_up"`        // "0s": everything retained
	Copy          Cost             `json:"copy"`
	Total         Cost             `json:"total"`
}

// Diff is how the candidate's triggers differ from the baseline's.
type Diff struct {
	Customers     int       `json:"customers"` // customers with any difference
	OnlyBaseline  int       `json:"only_baseline"`
	OnlyCandidate int       `json:"only_candidate"`
	Moved         int       `json:"moved"` // the same trigger, due at another time or under another rule version
	Examples      []Example `json:"examples"`
}

// Example is one difference, explained from what the trigger and
// suppression records carry.
type Example struct {
	Customer     string     `json:"customer"`
	Rule         string     `json:"rule"`
	Stage        int32      `json:"stage"`
	Channel      string     `json:"channel"`
	Change       string     `json:"change"` // only_baseline, only_candidate, moved
	BaselineDue  *time.Time `json:"baseline_due,omitempty"`
	CandidateDue *time.Time `json:"candidate_due,omitempty"`
	Explanation  string     `json:"explanation"`
	// cause groups explanations (a cap's name, a reason, a delay), so
	// that the examples show each kind of difference.
	cause string
}

// maxExamples bounds the differences a report explains.
const maxExamples = 12

// Compare builds the report of base and cand over [from, to). The end
// markers' synthetic customers are left out.
func Compare(from, to time.Time, base, cand Outcome) *Report {
	r := &Report{From: from, To: to, Approximate: approximate}
	for d := from.UTC().Truncate(24 * time.Hour); d.Before(to); d = d.Add(24 * time.Hour) {
		r.Days = append(r.Days, d.Format(time.DateOnly))
	}
	rules := map[string]bool{}
	r.Baseline = r.side(base, rules)
	r.Candidate = r.side(cand, rules)
	for id := range rules {
		r.Rules = append(r.Rules, id)
	}
	sort.Strings(r.Rules)
	for _, s := range []*Side{&r.Baseline, &r.Candidate} {
		for _, id := range r.Rules {
			if s.PerDay[id] == nil {
				s.PerDay[id] = make([]int, len(r.Days))
			}
		}
	}
	r.Differences = diff(r.Baseline, r.Candidate)
	return r
}

func inRange(t, from, to time.Time) bool { return !t.Before(from) && t.Before(to) }

func synthetic(c schemas.CustomerID) bool { return strings.HasPrefix(string(c), endMarkerPrefix) }

func (r *Report) side(o Outcome, rules map[string]bool) Side {
	s := Side{ByRule: map[string]int{}, PerDay: map[string][]int{}, Cost: o.Cost}
	stages := map[StageCount]int{}
	for _, t := range o.Triggers {
		if synthetic(t.Customer) || !inRange(t.DueAt, r.From, r.To) {
			continue
		}
		s.TriggerList = append(s.TriggerList, t)
		id := string(t.Rule)
		rules[id] = true
		s.Triggers++
		s.ByRule[id]++
		stages[StageCount{Rule: id, Stage: t.Stage, Channel: string(t.Channel)}]++
		if s.PerDay[id] == nil {
			s.PerDay[id] = make([]int, len(r.Days))
		}
		if day := int(t.DueAt.UTC().Sub(r.From.UTC().Truncate(24*time.Hour)) / (24 * time.Hour)); day >= 0 && day < len(r.Days) {
			s.PerDay[id][day]++
		}
	}
	for k, n := range stages {
		k.Count = n
		s.ByStage = append(s.ByStage, k)
	}
	sort.Slice(s.ByStage, func(i, j int) bool {
		a, b := s.ByStage[i], s.ByStage[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		return a.Channel < b.Channel
	})
	policies := map[PolicyCount]int{}
	for _, x := range o.Suppressions {
		if synthetic(x.Trigger.Customer) || !inRange(x.DecidedAt, r.From, r.To) {
			continue
		}
		s.SuppressionList = append(s.SuppressionList, x)
		rules[string(x.Trigger.Rule)] = true
		if x.Action == schemas.ActionDeferred {
			s.Deferred++
		} else {
			s.Suppressed++
		}
		policies[PolicyCount{Action: string(x.Action), Reason: x.Reason, Policy: x.Policy}]++
	}
	for k, n := range policies {
		k.Count = n
		s.Suppressions = append(s.Suppressions, k)
	}
	sort.Slice(s.Suppressions, func(i, j int) bool {
		a, b := s.Suppressions[i], s.Suppressions[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Action+a.Reason+a.Policy < b.Action+b.Reason+b.Policy
	})
	return s
}

// key identifies "the same message" on both sides: the customer, the rule,
// the stage and what caused it. Its trigger ID also carries the rule's
// version and the occurrence, which a changed delay or version moves.
func key(t *schemas.Trigger) string {
	return string(t.Customer) + "\x00" + string(t.Rule) + "\x00" + fmt.Sprint(t.Stage) + "\x00" + strings.Join(t.CausedBy, ",")
}

func diff(base, cand Side) Diff {
	var d Diff
	bt, ct := index(base.TriggerList), index(cand.TriggerList)
	bs, cs := indexSup(base.SuppressionList), indexSup(cand.SuppressionList)
	customers := map[schemas.CustomerID]bool{}
	var all []Example
	for _, k := range sortedKeys(bt) {
		b := bt[k]
		c, ok := ct[k]
		switch {
		case ok && c.ID == b.ID && c.DueAt.Equal(b.DueAt):
			continue
		case ok:
			d.Moved++
			e := example(b, "moved", &b.DueAt, &c.DueAt, movedWhy(b, c))
			e.cause = fmt.Sprint(c.DueAt.Sub(b.DueAt), c.RuleVersion-b.RuleVersion)
			all = append(all, e)
		default:
			d.OnlyBaseline++
			all = append(all, missingExample(b, "only_baseline", "candidate", cs, cand))
		}
		customers[b.Customer] = true
	}
	for _, k := range sortedKeys(ct) {
		if _, ok := bt[k]; ok {
			continue
		}
		c := ct[k]
		d.OnlyCandidate++
		customers[c.Customer] = true
		all = append(all, missingExample(c, "only_candidate", "baseline", bs, base))
	}
	d.Customers = len(customers)
	d.Examples = pickExamples(all)
	return d
}

func index(ts []schemas.Trigger) map[string]*schemas.Trigger {
	m := make(map[string]*schemas.Trigger, len(ts))
	for i := range ts {
		m[key(&ts[i])] = &ts[i]
	}
	return m
}

// indexSup indexes the final decision on each trigger: a suppression
// outranks the deferral before it.
func indexSup(xs []schemas.Suppression) map[string]*schemas.Suppression {
	m := make(map[string]*schemas.Suppression, len(xs))
	for i := range xs {
		k := key(&xs[i].Trigger)
		if prev, ok := m[k]; ok && prev.Action == schemas.ActionSuppressed {
			continue
		}
		m[k] = &xs[i]
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func example(t *schemas.Trigger, change string, bdue, cdue *time.Time, why string) Example {
	return Example{Customer: string(t.Customer), Rule: string(t.Rule), Stage: t.Stage, Channel: string(t.Channel),
		Change: change, BaselineDue: bdue, CandidateDue: cdue, Explanation: why}
}

// missingExample is t, sent on one side only, with why the other side
// did not send it.
func missingExample(t *schemas.Trigger, change, other string, sups map[string]*schemas.Suppression, side Side) Example {
	e := Example{Customer: string(t.Customer), Rule: string(t.Rule), Stage: t.Stage, Channel: string(t.Channel), Change: change,
		Explanation: missingWhy(t, other, sups, side)}
	if change == "only_baseline" {
		e.BaselineDue = &t.DueAt
	} else {
		e.CandidateDue = &t.DueAt
	}
	if x, ok := sups[key(t)]; ok {
		e.cause = string(x.Action) + "/" + x.Reason + "/" + x.Policy
	}
	return e
}

func movedWhy(b, c *schemas.Trigger) string {
	var parts []string
	if b.RuleVersion != c.RuleVersion {
		parts = append(parts, fmt.Sprintf("rule %s version %d -> %d", b.Rule, b.RuleVersion, c.RuleVersion))
	}
	if !b.DueAt.Equal(c.DueAt) {
		parts = append(parts, fmt.Sprintf("due %s -> %s (%+v): the stage's delay or time changed",
			b.DueAt.UTC().Format(time.RFC3339), c.DueAt.UTC().Format(time.RFC3339), c.DueAt.Sub(b.DueAt)))
	}
	if len(parts) == 0 {
		parts = append(parts, "same due time, another trigger ID (occurrence changed)")
	}
	return strings.Join(parts, "; ")
}

// missingWhy explains why the other side did not send t.
func missingWhy(t *schemas.Trigger, other string, sups map[string]*schemas.Suppression, side Side) string {
	if x, ok := sups[key(t)]; ok {
		s := fmt.Sprintf("the %s's contact policy %s it: reason %s, policy %s", other, x.Action, x.Reason, x.Policy)
		if x.Action == schemas.ActionDeferred {
			s += " until " + x.DeferredTo.UTC().Format(time.RFC3339) + " (after the range)"
		}
		return s
	}
	if side.ByRule[string(t.Rule)] == 0 && !hasRule(side, t.Rule) {
		return fmt.Sprintf("the %s has no trigger of rule %s in the range (rule removed, renamed, or its condition never matched)", other, t.Rule)
	}
	return fmt.Sprintf("the %s's rule %s did not fire for this cause (caused by %s): its condition, delay, sequence exit or once-only marks decide differently",
		other, t.Rule, strings.Join(t.CausedBy, ","))
}

func hasRule(s Side, id schemas.RuleID) bool {
	for _, x := range s.SuppressionList {
		if x.Trigger.Rule == id {
			return true
		}
	}
	return false
}

// pickExamples keeps a few differences, one per (change, rule) first so
// that every kind of difference is shown.
func pickExamples(all []Example) []Example {
	var out []Example
	seen := map[string]bool{}
	for pass := 0; pass < 2 && len(out) < maxExamples; pass++ {
		for _, e := range all {
			k := e.Change + "/" + e.Rule + "/" + e.cause
			if pass == 0 && seen[k] || pass == 1 && containsExample(out, e) {
				continue
			}
			seen[k] = true
			out = append(out, e)
			if len(out) == maxExamples {
				break
			}
		}
	}
	return out
}

func containsExample(xs []Example, e Example) bool {
	for _, x := range xs {
		if x.Customer == e.Customer && x.Rule == e.Rule && x.Stage == e.Stage && x.Change == e.Change {
			return true
		}
	}
	return false
}
