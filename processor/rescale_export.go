package processor

import "github.com/triggerd/triggerd/schemas"

// RepartitionTopicConfigs are the settings the internal topics of raw
// inputs are created with, for a rescale (processor/rescale) that recreates
// them with another partition count.
func RepartitionTopicConfigs() map[string]*string { return repartitionTopicConfigs() }

// InputSettings are the setting names (under kafka.topics) of the topics
// Inputs returns, in the same order.
func InputSettings() []string { return append([]string(nil), inputKeys...) }

// InputSources are the schemas.Source values of the topics Inputs returns,
// in the same order: the input a held record names (state.HeldRecord).
func InputSources() []schemas.Source {
	return []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile}
}
