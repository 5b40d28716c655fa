package schemas

import (
	_ "embed"
	"fmt"
)

// Format is the encoding of a topic's record values.
type Format string

const (
	// FormatAvro is Avro binary with the Confluent Schema Registry framing:
	// magic byte 0, the writer schema's ID as a 4-byte big-endian integer,
	// then the Avro binary encoding of the record.
	FormatAvro Format = "avro"
	// FormatJSON is one JSON object per record value, with the field names
	// of the Avro schema.
	FormatJSON Format = "json"
)

// ParseFormat parses "avro" or "json".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatAvro, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("schemas: unknown format %q: want avro or json", s)
}

// ValueSubject is the registry subject of a topic's record values under the
// TopicNameStrategy: "<topic>-value".
func ValueSubject(topic string) string { return topic + "-value" }

var (
	//go:embed avro/clickstream.avsc
	clickstreamAvsc string
	//go:embed avro/transaction.avsc
	transactionAvsc string
	//go:embed avro/profile.avsc
	profileAvsc string
	//go:embed avro/trigger.avsc
	triggerAvsc string
)

// EventSchema returns the current Avro schema (.avsc text) of an input
// source, or "" for SourceUnknown.
func EventSchema(src Source) string {
	switch src {
	case SourceClickstream:
		return clickstreamAvsc
	case SourceTransaction:
		return transactionAvsc
	case SourceProfile:
		return profileAvsc
	}
	return ""
}

// TriggerSchema returns the current Avro schema (.avsc text) of the trigger
// topic: the contract with downstream senders.
func TriggerSchema() string { return triggerAvsc }
