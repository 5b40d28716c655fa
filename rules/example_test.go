package rules

import "testing"

func TestExampleCompiles(t *testing.T) {
	s, err := ExampleSet()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rules()) < 17 {
		t.Fatalf("example has %d rules", len(s.Rules()))
	}
}
