package schemas

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

//go:embed avro/suppression.avsc
var suppressionAvsc string

// SuppressionSchema returns the current Avro schema (.avsc text) of the
// suppressions topic.
func SuppressionSchema() string { return suppressionAvsc }

// suppressionFields are the policy's own fields, then every trigger field
// under its trigger name: a consumer of the suppressions topic reads the
// trigger that would have been sent with the same names as on the trigger
// topic.
var suppressionFields = append([]field[Suppression]{
	stringF("action", kString, func(s *Suppression) *SuppressAction { return &s.Action }),
	stringF("reason", kString, func(s *Suppression) *string { return &s.Reason }),
	stringF("policy", kString, func(s *Suppression) *string { return &s.Policy }),
	timeF("decided_at", kTime, func(s *Suppression) *time.Time { return &s.DecidedAt }),
	timeF("deferred_to", kOptTime, func(s *Suppression) *time.Time { return &s.DeferredTo }),
}, liftTriggerFields()...)

// liftTriggerFields adapts the trigger's field table to the Trigger inside
// a Suppression, so the two records can never disagree on a trigger field.
func liftTriggerFields() []field[Suppression] {
	out := make([]field[Suppression], len(triggerFields))
	for i, f := range triggerFields {
		out[i] = liftField(f, func(s *Suppression) *Trigger { return &s.Trigger })
	}
	return out
}

// SuppressionDecoder decodes suppression records, for tests and downstream
// consumers written in Go. It is safe for concurrent use.
type SuppressionDecoder struct {
	f    Format
	avro *avroReader[Suppression]
	pool sync.Pool
}

// NewSuppressionDecoder returns a decoder for format f; reg is required for
// FormatAvro.
func NewSuppressionDecoder(f Format, reg *sr.Client) (*SuppressionDecoder, error) {
	d := &SuppressionDecoder{f: f}
	d.pool.New = func() any { return new(jsonSuppression) }
	switch f {
	case FormatAvro:
		if reg == nil {
			return nil, errors.New("schemas: the avro format needs a schema registry client")
		}
		d.avro = newAvroReader(reg, suppressionAvsc, suppressionFields)
	case FormatJSON:
	default:
		return nil, fmt.Errorf("schemas: unknown format %q", f)
	}
	return d, nil
}

// Decode overwrites s from value. A suppression needs an action, a reason
// and a valid trigger.
func (d *SuppressionDecoder) Decode(ctx context.Context, value []byte, s *Suppression) error {
	*s = Suppression{}
	var err error
	switch d.f {
	case FormatAvro:
		err = d.avro.decode(ctx, value, s, nil)
	case FormatJSON:
		err = decodeJSON[Suppression](&d.pool, value, s)
	}
	if err != nil {
		return err
	}
	if s.Action == "" || s.Reason == "" {
		return &DecodeError{Reason: ReasonBadField, Field: "action", Err: errors.New("suppression without action or reason")}
	}
	return validateTrigger(&s.Trigger)
}

// jsonSuppression is the JSON reader's struct: the policy's fields and the
// trigger's (embedded, so encoding/json reads them at the top level).
type jsonSuppression struct {
	Action     string   `json:"action"`
	Reason     string   `json:"reason"`
	Policy     string   `json:"policy"`
	DecidedAt  jsonTime `json:"decided_at"`
	DeferredTo jsonTime `json:"deferred_to"`
	jsonTrigger
}

func (j *jsonSuppression) reset() {
	j.jsonTrigger.reset()
	j.Action, j.Reason, j.Policy = "", "", ""
	j.DecidedAt, j.DeferredTo = jsonTime{}, jsonTime{}
}

func (j *jsonSuppression) copyTo(s *Suppression) {
	s.Action = SuppressAction(j.Action)
	s.Reason = j.Reason
	s.Policy = j.Policy
	s.DecidedAt = j.DecidedAt.t
	s.DeferredTo = j.DeferredTo.t
	j.jsonTrigger.copyTo(&s.Trigger)
}
