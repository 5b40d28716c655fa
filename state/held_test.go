package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func hr(input uint8, offset int64, ms int64, key, value string) HeldRecord {
	r := HeldRecord{Input: input, Offset: offset, Time: time.UnixMilli(ms).UTC()}
	if key != "" {
		r.Key = []byte(key)
	}
	if value != "" {
		r.Value = []byte(value)
	}
	return r
}

// held returns the committed held records (copied).
func held(t testing.TB, p *Partition) []HeldRecord {
	t.Helper()
	var rs []HeldRecord
	must(t, p.Held(func(r HeldRecord) error {
		r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		rs = append(rs, r)
		return nil
	}))
	return rs
}

func heldString(rs []HeldRecord) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%d/%d@%d %q=%q ", r.Input, r.Offset, r.Time.UnixMilli(), r.Key, r.Value)
	}
	return strings.TrimSpace(b.String())
}

// checkHeld compares the committed held records with want, field by field
// (times with ==: they must come back in UTC, truncated to the millisecond).
func checkHeld(t testing.TB, p *Partition, want ...HeldRecord) {
	t.Helper()
	got := held(t, p)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.Input == w.Input && g.Offset == w.Offset && g.Time == w.Time &&
			bytes.Equal(g.Key, w.Key) && bytes.Equal(g.Value, w.Value)
	}
	if !ok {
		t.Fatalf("Held:\n got %s\nwant %s", heldString(got), heldString(want))
	}
}

func checkHeldCount(t testing.TB, p *Partition, want int64) {
	t.Helper()
	if n := p.HeldCount(); n != want {
		t.Fatalf("HeldCount = %d, want %d", n, want)
	}
}

func TestHeld(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs)
	p := part(t, s, 3)

	binKey := "\x00k\xff\x00"
	recs := []HeldRecord{ // in Held order: input, then offset
		hr(1, 7, 1_700_000_000_123, "alice", `{"e":"view"}`),
		hr(1, 300, -5, "", "no key, before 1970"),
		hr(1, 1<<40, 42, binKey, ""),
		hr(2, 0, 1_700_000_000_000, "bob", "\x00\x01binary\x00"),
		hr(2, 9, 0, "carol", strings.Repeat("v", 1000)),
	}
	// Hold out of order; a sub-millisecond time is truncated.
	for _, i := range []int{3, 0, 4, 2, 1} {
		r := recs[i]
		if i == 0 {
			r.Time = r.Time.Add(999 * time.Microsecond).In(time.FixedZone("X", 3600))
		}
		must(t, p.Hold(r))
	}
	checkHeldCount(t, p, 5)
	checkHeld(t, p) // uncommitted: not listed
	must(t, p.Commit(-1))
	checkHeldCount(t, p, 5)
	checkHeld(t, p, recs...)

	// Holding a held record again replaces it; the count does not change.
	recs[4] = hr(2, 9, 10, "carol", "replaced")
	must(t, p.Hold(recs[4]))
	checkHeldCount(t, p, 5)
	must(t, p.Commit(-1))
	checkHeldCount(t, p, 5)

	// Reopen: the records and the count come back from Pebble.
	closeStore(t, s)
	s = openStore(t, fs)
	defer func() { closeStore(t, s) }()
	p = part(t, s, 3)
	checkHeldCount(t, p, 5)
	checkHeld(t, p, recs...)

	// Release two, one absent (no-op), and hold and release a new one in the
	// same batch.
	must(t, p.Release(1, 300))
	must(t, p.Release(2, 0))
	must(t, p.Release(2, 0))
	must(t, p.Release(3, 1))
	must(t, p.Hold(hr(3, 5, 1, "tmp", "x")))
	checkHeldCount(t, p, 4)
	must(t, p.Release(3, 5))
	checkHeldCount(t, p, 3)
	checkHeld(t, p, recs...) // Held sees only committed records
	var changes []string
	must(t, p.Changes(func(k, v []byte) error {
		changes = append(changes, fmt.Sprintf("%x=%d", k, len(v)))
		return nil
	}))
	// Two tombstones; the record held and released in the batch is not sent.
	if want := []string{
		fmt.Sprintf("%x=0", appendHeldKey(nil, 3, 1, 300)[partLen:]),
		fmt.Sprintf("%x=0", appendHeldKey(nil, 3, 2, 0)[partLen:]),
	}; fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	// The batch is sealed.
	if err := p.Hold(hr(1, 1, 1, "", "")); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("Hold after Changes: %v", err)
	}
	if err := p.Release(1, 7); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("Release after Changes: %v", err)
	}
	must(t, p.Commit(-1))
	recs = []HeldRecord{recs[0], recs[2], recs[4]}
	checkHeldCount(t, p, 3)
	checkHeld(t, p, recs...)

	// Abort drops a Hold and a Release.
	must(t, p.Hold(hr(1, 8, 1, "dave", "x")))
	must(t, p.Release(1, 7))
	checkHeldCount(t, p, 3)
	p.Abort()
	checkHeldCount(t, p, 3)
	must(t, p.Commit(-1))
	checkHeld(t, p, recs...)

	// The handle knows which records are committed without reading Pebble:
	// one held in a batch it committed and one that was committed before it
	// opened are both released with a tombstone; one held in an aborted
	// batch is not.
	must(t, p.Hold(hr(1, 11, 1, "erin", "x")))
	must(t, p.Commit(-1))
	must(t, p.Hold(hr(1, 12, 1, "fred", "x")))
	p.Abort()
	must(t, p.Release(1, 11))
	must(t, p.Release(1, 7))
	must(t, p.Release(1, 12))
	changes = changes[:0]
	must(t, p.Changes(func(k, v []byte) error {
		changes = append(changes, fmt.Sprintf("%x=%d", k, len(v)))
		return nil
	}))
	if want := []string{
		fmt.Sprintf("%x=0", appendHeldKey(nil, 3, 1, 11)[partLen:]),
		fmt.Sprintf("%x=0", appendHeldKey(nil, 3, 1, 7)[partLen:]),
	}; fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	p.Abort()
	must(t, p.Release(1, 11))
	must(t, p.Commit(-1))
	checkHeld(t, p, recs...)

	// Erase does not touch held records.
	must(t, p.Erase("alice"))
	must(t, p.Commit(-1))
	checkHeldCount(t, p, 3)
	checkHeld(t, p, recs...)

	// Bad calls.
	if err := p.Hold(hr(1, -1, 1, "", "")); err == nil {
		t.Fatal("Hold of a negative offset accepted")
	}
	if err := p.Release(1, -1); err == nil {
		t.Fatal("Release of a negative offset accepted")
	}
	stop := errors.New("stop")
	n := 0
	if err := p.Held(func(HeldRecord) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Held with a failing fn: %v after %d calls", err, n)
	}

	// Another partition's held records are its own.
	q := part(t, s, 4)
	checkHeldCount(t, q, 0)
	checkHeld(t, q)
	must(t, q.Hold(hr(1, 7, 1, "q", "q")))
	must(t, q.Commit(-1))
	checkHeld(t, p, recs...)
	must(t, s.DropPartition(4))
	checkHeld(t, part(t, s, 4))
}

// Hold copies the caller's buffers: changing them afterwards changes nothing.
func TestHoldCopies(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 1)
	key, value := []byte("key"), []byte("value")
	must(t, p.Hold(HeldRecord{Input: 1, Offset: 1, Time: time.UnixMilli(5).UTC(), Key: key, Value: value}))
	copy(key, "KEY")
	copy(value, "VALUE")
	key = append(key[:0], "other"...)
	value = append(value[:0], "other"...)
	// Many more holds: the arena grows and moves.
	for i := range 1000 {
		must(t, p.Hold(hr(2, int64(i), 1, strings.Repeat("k", 100), strings.Repeat("v", 100))))
	}
	want := hr(1, 1, 5, "key", "value")
	must(t, p.Changes(func(k, v []byte) error {
		if bytes.Equal(k, appendHeldKey(nil, 1, 1, 1)[partLen:]) {
			if _, hk, hv, err := decodeHeld(v); err != nil || string(hk) != "key" || string(hv) != "value" {
				t.Errorf("changelog record %q %q, %v", hk, hv, err)
			}
		}
		return nil
	}))
	must(t, p.Commit(-1))
	got := held(t, p)
	if len(got) != 1001 || heldString(got[:1]) != heldString([]HeldRecord{want}) {
		t.Fatalf("held %d records, first %s", len(got), heldString(got[:1]))
	}
	checkHeldCount(t, p, 1001)
}

// Held refuses to list a half-restored partition.
func TestHeldDuringRestore(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 1)
	r := hr(1, 3, 5, "k", "v")
	must(t, p.ApplyChangelog(appendHeldKey(nil, 1, 1, 3)[partLen:], appendHeld(nil, 5, r.Key, r.Value), 0))
	if err := p.Held(func(HeldRecord) error { return nil }); err == nil {
		t.Fatal("Held during a restore")
	}
	if err := p.Hold(r); err == nil {
		t.Fatal("Hold during a restore")
	}
	must(t, p.FlushRestore())
	checkHeldCount(t, p, 1)
	checkHeld(t, p, r)
	// Applying the same record again is harmless; its tombstone releases it.
	must(t, p.ApplyChangelog(appendHeldKey(nil, 1, 1, 3)[partLen:], appendHeld(nil, 5, r.Key, r.Value), 0))
	must(t, p.ApplyChangelog(appendHeldKey(nil, 1, 1, 3)[partLen:], nil, 1))
	must(t, p.ApplyChangelog(appendHeldKey(nil, 1, 1, 3)[partLen:], nil, 1))
	must(t, p.FlushRestore())
	checkHeldCount(t, p, 0)
	checkHeld(t, p)
}

func TestHeldCodec(t *testing.T) {
	for _, c := range []struct {
		ms         int64
		key, value []byte
	}{
		{0, nil, nil},
		{-1, []byte{0}, nil},
		{1 << 50, nil, []byte{0}},
		{-1 << 60, []byte("k"), []byte("v")},
	} {
		b := appendHeld(nil, c.ms, c.key, c.value)
		ms, k, v, err := decodeHeld(b)
		if err != nil || ms != c.ms || !bytes.Equal(k, c.key) || !bytes.Equal(v, c.value) {
			t.Errorf("%+v: got %d %q %q %v", c, ms, k, v, err)
		}
		if cap(v) != len(v) {
			t.Errorf("%+v: the value can grow into the buffer", c)
		}
		for i := range len(b) - len(c.value) {
			if _, _, _, err := decodeHeld(b[:i]); err == nil {
				t.Errorf("%+v: truncated to %d bytes: decoded", c, i)
			}
		}
	}
	if _, _, _, err := decodeHeld([]byte{2, 0, 0}); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("future version: %v", err)
	}
	// Keys sort by input, then offset.
	if bytes.Compare(appendHeldKey(nil, 0, 1, 1<<40), appendHeldKey(nil, 0, 2, 0)) >= 0 ||
		bytes.Compare(appendHeldKey(nil, 0, 1, 255), appendHeldKey(nil, 0, 1, 256)) >= 0 {
		t.Error("held keys out of order")
	}
	for _, k := range [][]byte{nil, []byte("h"), []byte("h\x01\x00"), append([]byte("h\x01"), 0xFF, 0, 0, 0, 0, 0, 0, 0)} {
		if _, _, err := parseHeldKey(k); err == nil {
			t.Errorf("parseHeldKey(%x) accepted", k)
		}
	}
}

func TestLayoutVersion(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs)
	key := appendMetaKey(nil, storePart, "layout")
	setLayout := func(v uint32) {
		must(t, s.db.Set(key, binary.BigEndian.AppendUint32(nil, v), pebble.Sync))
	}
	layout := func() uint32 {
		v, closer, err := s.db.Get(key)
		must(t, err)
		defer closer.Close()
		return binary.BigEndian.Uint32(v)
	}
	if got := layout(); got != layoutVersion {
		t.Fatalf("new store: layout %d", got)
	}
	// A version 1 store (no held records) is migrated.
	setLayout(1)
	closeStore(t, s)
	s = openStore(t, fs)
	if got := layout(); got != layoutVersion {
		t.Fatalf("migrated store: layout %d", got)
	}
	// A newer one is refused.
	setLayout(layoutVersion + 1)
	closeStore(t, s)
	if s2, err := Open(testConfig(fs), nil); err == nil {
		s2.Close()
		t.Fatal("store of a newer layout opened")
	} else if !strings.Contains(err.Error(), "unknown to this release") {
		t.Fatalf("error %v", err)
	}
}
