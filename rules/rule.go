package rules

import (
	"time"

	"cel.dev/cel-go/cel"

	"github.com/triggerd/triggerd/schemas"
)

// Family is the trigger family of a rule.
type Family string

// The trigger families. Anomaly (risk) triggers are exempt from marketing
// caps (a later issue's contact policy reads the family).
const (
	Transactional Family = "transactional"
	Behavioral    Family = "behavioral"
	Recurring     Family = "recurring"
	Threshold     Family = "threshold"
	Anomaly       Family = "anomaly"
)

// startKind says what starts a rule.
type startKind uint8

const (
	startOn        startKind = iota + 1 // on: events, fires at once
	startSequence                       // sequence: staged follow-ups
	startCalendar                       // calendar: a profile date
	startSilence                        // silence: no matching event for a while
	startThreshold                      // threshold: a value crosses a level
)

func (k startKind) String() string {
	return [...]string{"", "on", "sequence", "calendar", "silence", "threshold"}[k]
}

// rule is one compiled rule.
type rule struct {
	id       schemas.RuleID
	version  int32
	family   Family
	kind     string
	priority int32
	channel  schemas.Channel
	expiry   time.Duration
	attach   string // "", "cart" or "order": fills the trigger's items and value
	payload  []payloadField

	start startKind
	on    []schemas.EventType // on, threshold: the event types
	when  cel.Program         // on: condition; nil = always
	once  *once               // on, sequence start: once / once_per

	contact ruleContact // the contact policy's settings for this rule

	seq *sequence
	cal *calendar
	sil *silence
	thr *thresholdSpec
}

type payloadField struct {
	name string
	prg  cel.Program
}

// once limits how often a rule fires (or a sequence starts) per key: for
// ever (period 0) or once per period.
type once struct {
	period time.Duration // 0: for ever
	key    cel.Program   // nil: one key per customer
}

type sequence struct {
	startOn   []schemas.EventType
	startWhen cel.Program
	key       cel.Program // nil: one run per customer
	restart   bool
	exitOn    []schemas.EventType
	exitWhen  cel.Program // nil: every exit event ends the run
	stages    []stage
}

type stage struct {
	delay   time.Duration
	at      cel.Program // timestamp; evaluated at the start
	when    cel.Program // evaluated at the start: false skips the stage
	channel schemas.Channel
	payload []payloadField
}

type silence struct {
	any  bool
	on   []schemas.EventType
	for_ time.Duration
}

type thresholdSpec struct {
	value   cel.Program
	atLeast int64
	key     cel.Program
}

// timerID is the ID of a rule's timer for a run key.
func timerID(r schemas.RuleID, key string) string {
	if key == "" {
		return string(r)
	}
	return string(r) + "/" + key
}
