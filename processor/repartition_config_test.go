package processor

import (
	"reflect"
	"strings"
	"testing"
)

func TestRepartitionConfig(t *testing.T) {
	c := DefaultConfig()
	c.InstanceID = "i1"
	c.Repartition.Inputs = []string{"clickstream"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{"triggerd-clickstream-repartition", "transactions", "profiles"}
	if got := c.Inputs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Inputs() = %v, want %v", got, want)
	}
	if got := c.RawInputs(); !reflect.DeepEqual(got, []string{"clickstream"}) {
		t.Errorf("RawInputs() = %v", got)
	}
	if got := c.RepartitionGroup(); got != "triggerd-repartition" {
		t.Errorf("RepartitionGroup() = %q", got)
	}
	if c.Topics.Clickstream != "clickstream" {
		t.Error("Inputs changed the configured topic")
	}
}

func TestRepartitionConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		inputs     []string
		partitions int32
		clash      bool
		want       string
	}{
		{inputs: []string{"clicks"}, want: `processor: repartition.inputs[0]: "clicks" is not clickstream, transactions, profiles`},
		{inputs: []string{"profiles", "profiles"}, want: "processor: repartition.inputs[1]: profiles is listed twice"},
		{inputs: []string{"clickstream"}, partitions: -2, want: "processor: repartition.partitions: -2 < 0"},
		{inputs: []string{"clickstream", "transactions", "profiles"}, want: "processor: repartition.partitions: required (> 0) when every input is raw"},
		{inputs: []string{"clickstream"}, clash: true, want: `processor: topics.clickstream: the internal topic of raw input "clickstream", "triggerd-clickstream-repartition", is also another topic`},
	} {
		c := DefaultConfig()
		c.InstanceID = "i1"
		c.Repartition.Inputs, c.Repartition.Partitions = tc.inputs, tc.partitions
		if tc.clash {
			c.Topics.Triggers = c.RepartitionTopic(c.Topics.Clickstream)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("inputs %v partitions %d: error %v, want %q", tc.inputs, tc.partitions, err, tc.want)
		}
	}
	c := DefaultConfig()
	c.InstanceID = "i1"
	c.Repartition.Inputs, c.Repartition.Partitions = []string{"clickstream", "transactions", "profiles"}, 6
	if err := c.Validate(); err != nil {
		t.Errorf("every input raw with partitions 6: %v", err)
	}
}
