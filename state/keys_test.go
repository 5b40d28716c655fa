package state

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// The time-ordered key must sort by (due, customer, ID) for any customer
// IDs, including ones with 0x00 bytes and ones that prefix each other.
func TestTimerKeyOrder(t *testing.T) {
	type ref struct {
		due   int64
		c, id string
	}
	refs := []ref{
		{-5, "z", "z"},
		{0, "", "a"},
		{0, "\x00", ""},
		{0, "\x00", "a"},
		{0, "\x00\x00", ""},
		{0, "\x00\x01", ""},
		{0, "\x00\xff", ""},
		{0, "a", ""},
		{0, "a", "\x00"},
		{0, "a", "b"},
		{0, "a\x00", "a"},
		{0, "a\x00b", ""},
		{0, "a\x01", ""},
		{0, "ab", ""},
		{0, "b", ""},
		{1, "a", "a"},
		{1 << 40, "a", "a"},
	}
	less := func(a, b ref) bool {
		if a.due != b.due {
			return a.due < b.due
		}
		if a.c != b.c {
			return a.c < b.c
		}
		return a.id < b.id
	}
	for i, a := range refs {
		ka := appendTimerKey(nil, 3, encodeDue(a.due), schemas.CustomerID(a.c), a.id)
		c, id, err := parseTimerRef(appendReverseKey(nil, 3, schemas.CustomerID(a.c), a.id)[partLen+1:])
		if err != nil || string(c) != a.c || id != a.id {
			t.Errorf("parse %q/%q = %q/%q, %v", a.c, a.id, c, id, err)
		}
		for j, b := range refs {
			kb := appendTimerKey(nil, 3, encodeDue(b.due), schemas.CustomerID(b.c), b.id)
			if got, want := bytes.Compare(ka, kb) < 0, less(a, b); got != want {
				t.Errorf("refs %d %v and %d %v: key order %v, want %v", i, a, j, b, got, want)
			}
		}
	}
}

func FuzzParseTimerRef(f *testing.F) {
	f.Add([]byte("a\x00\x01b"))
	f.Add([]byte("a\x00\xff\x00\x01"))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, id, err := parseTimerRef(b)
		if err != nil {
			return
		}
		if got := appendReverseKey(nil, 0, c, id)[partLen+1:]; !bytes.Equal(got, b) {
			t.Fatalf("%q parses to %q/%q, which encodes to %q", b, c, id, got)
		}
	})
}

// FuzzDecodeTimer: never panics; an accepted record re-encodes to one that
// decodes to the same timer.
func FuzzDecodeTimer(f *testing.F) {
	tt := tm("c", "x", 1234)
	f.Add(appendTimer(nil, &tt, 1234))
	f.Add([]byte{timerV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var t1 schemas.Timer
		ms, err := decodeTimer(b, &t1)
		if err != nil {
			return
		}
		e1 := appendTimer(nil, &t1, ms)
		var t2 schemas.Timer
		if ms2, err := decodeTimer(e1, &t2); err != nil || ms2 != ms {
			t.Fatalf("re-encoding: %v, due %d != %d", err, ms2, ms)
		}
		if e2 := appendTimer(nil, &t2, ms); !bytes.Equal(e1, e2) {
			t.Fatalf("not stable:\n%x\n%x", e1, e2)
		}
		if !t1.Due.Equal(time.UnixMilli(ms)) {
			t.Fatalf("Due %v, ms %d", t1.Due, ms)
		}
	})
}

// FuzzDecodeOffsets: never panics.
func FuzzDecodeOffsets(f *testing.F) {
	f.Add(appendOffsets(nil, []string{"a", "b"}, map[string]int64{"a": 1, "b": -1}, 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := map[string]int64{}
		if _, err := decodeOffsets(b, in); err != nil && !strings.Contains(err.Error(), "offsets record") {
			t.Fatalf("error without context: %v", err)
		}
	})
}
