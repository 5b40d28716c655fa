package state

import (
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Field numbers of schemas.Run and schemas.Mark.
const (
	runRule                 = 1  // string
	runKey                  = 2  // string
	runOccurrence           = 3  // string
	runStage                = 4  // varint
	runStartedAt            = 5  // time
	runVersion              = 6  // varint
	runDue                  = 7  // time, repeated (format 1 wrote a zero time as (0, 0), format 2 as nothing)
	runCausedBy             = 8  // string
	runCausedByIsOccurrence = 9  // varint 1: CausedBy equals Occurrence, not written (format 2)
	runRuleRef              = 10 // varint: the rule by index (format 2, see names)

	markRule    = 1 // string
	markKey     = 2 // string
	markAt      = 3 // time
	markExpires = 4 // time
	markRuleRef = 5 // varint: the rule by index (format 2, see names)
)

var (
	runFields = newFieldTable(bytesField(runRule), bytesField(runKey), bytesField(runOccurrence),
		varintField(runStage), bytesField(runStartedAt), varintField(runVersion), bytesField(runDue),
		bytesField(runCausedBy), varintField(runCausedByIsOccurrence), varintField(runRuleRef))
	markFields = newFieldTable(bytesField(markRule), bytesField(markKey), bytesField(markAt),
		bytesField(markExpires), varintField(markRuleRef))
)

func appendRun(b []byte, field int, run *schemas.Run, base timeBase, nm *names) []byte {
	b, at := beginNested(b, field)
	b = nm.append(b, runRule, runRuleRef, string(run.Rule))
	if run.Key != "" {
		b = appendStringField(b, runKey, run.Key)
	}
	if run.Occurrence != "" {
		b = appendStringField(b, runOccurrence, run.Occurrence)
	}
	if run.Stage != 0 {
		b = appendIntField(b, runStage, int64(run.Stage))
	}
	b = base.appendCTimeField(b, runStartedAt, run.StartedAt)
	if run.Version != 0 {
		b = appendIntField(b, runVersion, int64(run.Version))
	}
	for _, d := range run.Due {
		// Every entry is written, a zero time too: the positions are the
		// stage numbers.
		var at2 int
		b, at2 = beginNested(b, runDue)
		if !d.IsZero() {
			b = base.appendCTime(b, d)
		}
		b = endNested(b, at2)
	}
	switch {
	case run.CausedBy == "":
	case run.CausedBy == run.Occurrence:
		// A run per event: its occurrence is the event ID.
		b = appendIntField(b, runCausedByIsOccurrence, 1)
	default:
		b = appendStringField(b, runCausedBy, run.CausedBy)
	}
	return endNested(b, at)
}

// decodeRun decodes into run, a reused slot: its strings are hints and its
// due times keep their capacity.
func decodeRun(r reader, run *schemas.Run) error {
	old := *run
	*run = schemas.Run{Due: old.Due[:0]}
	causedByOcc := false
	for r.next(runFields) {
		switch r.field {
		case runRule:
			run.Rule = schemas.RuleID(r.name(string(old.Rule)))
		case runRuleRef:
			run.Rule = schemas.RuleID(r.nameRef())
		case runKey:
			run.Key = str(r.bytes(), old.Key)
		case runOccurrence:
			run.Occurrence = str(r.bytes(), old.Occurrence)
		case runStage:
			run.Stage = int32(r.varint())
		case runStartedAt:
			run.StartedAt = r.time()
		case runVersion:
			run.Version = int32(r.varint())
		case runDue:
			run.Due = append(run.Due, r.due())
		case runCausedBy:
			run.CausedBy = str(r.bytes(), old.CausedBy)
		case runCausedByIsOccurrence:
			causedByOcc = r.varint() == 1
		}
	}
	if causedByOcc {
		run.CausedBy = run.Occurrence
	}
	return r.err
}

// due reads one entry of a run's due times: compact in format 2, where the
// zero time is an empty value; (unix seconds, nanos) in format 1, where it
// was (0, 0).
func (r *reader) due() time.Time {
	var d time.Time
	if v := r.bytes(); r.err == nil && len(v) > 0 && r.compact {
		t := r.nested(v)
		d = t.ctime()
		if t.err == nil && len(t.b) > 0 {
			t.fail(errOverflow)
		}
		r.failIf(t.err)
	} else if r.err == nil && len(v) > 0 {
		t := reader{b: v}
		sec, nsec := t.varint(), t.uvarint()
		switch {
		case t.err != nil:
			r.fail(t.err)
		case nsec >= 1e9 || len(t.b) > 0:
			r.fail(errOverflow)
		default:
			d = time.Unix(sec, int64(nsec)).UTC()
		}
	}
	if !r.compact && d.Equal(time.Unix(0, 0)) {
		d = time.Time{} // (0, 0) is how format 1 wrote the zero time
	}
	return d
}

func appendMark(b []byte, field int, m *schemas.Mark, base timeBase, nm *names) []byte {
	b, at := beginNested(b, field)
	b = nm.append(b, markRule, markRuleRef, string(m.Rule))
	if m.Key != "" {
		b = appendStringField(b, markKey, m.Key)
	}
	b = base.appendCTimeField(b, markAt, m.At)
	b = base.appendCTimeField(b, markExpires, m.Expires)
	return endNested(b, at)
}

// decodeMark decodes into m, a reused slot whose strings are hints.
func decodeMark(r reader, m *schemas.Mark) error {
	old := *m
	*m = schemas.Mark{}
	for r.next(markFields) {
		switch r.field {
		case markRule:
			m.Rule = schemas.RuleID(r.name(string(old.Rule)))
		case markRuleRef:
			m.Rule = schemas.RuleID(r.nameRef())
		case markKey:
			m.Key = str(r.bytes(), old.Key)
		case markAt:
			m.At = r.time()
		case markExpires:
			m.Expires = r.time()
		}
	}
	return r.err
}
