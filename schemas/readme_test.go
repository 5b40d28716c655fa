package schemas

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestReadmeInputExamples decodes the README's example events, one of each
// kind, with the JSON decoder of the topic the README puts them on: the
// examples a producer copies are records the processor takes.
func TestReadmeInputExamples(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(readme, []byte("## The input contract"))
	_, block, ok2 := bytes.Cut(rest, []byte("```json\n"))
	block, _, ok3 := bytes.Cut(block, []byte("```"))
	if !ok || !ok2 || !ok3 {
		t.Fatal(`README.md has no json block under "## The input contract"`)
	}
	topic := map[EventType]Source{"page_view": SourceClickstream, "add_to_cart": SourceClickstream,
		"remove_from_cart": SourceClickstream, "purchase": SourceTransaction,
		"profile_update": SourceProfile, "profile_erase": SourceProfile}
	seen := map[EventType]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(block)), "\n") {
		var src Source
		found := false
		for typ, s := range topic {
			if strings.Contains(line, `"type": "`+string(typ)+`"`) {
				src, found = s, true
				seen[typ] = true
			}
		}
		if !found {
			t.Errorf("example of no known type: %s", line)
			continue
		}
		dec, err := NewDecoder(src, FormatJSON, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ev Event
		if err := dec.Decode([]byte(line), &ev); err != nil {
			t.Errorf("the README's example does not decode: %v\n%s", err, line)
		} else if ev.Customer != "c-42" {
			t.Errorf("example decoded with customer %q: %s", ev.Customer, line)
		}
	}
	if len(seen) != len(topic) {
		t.Errorf("the README shows examples of %v, want one of each of the %d kinds", seen, len(topic))
	}
}
