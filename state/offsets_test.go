package state

import (
	"encoding/hex"
	"math"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Offsets records as the release before the typed progress API wrote them
// (its processor stored event-time progress with SetOffset under
// "@progress/<topic>" and "@fired"): inputs clicks 120 and transactions 7,
// progress of clicks 1717747750500 and of transactions none yet (the
// processor's noTime, math.MinInt64), fired up to 1717747740000. The first
// is the changelog copy (changelog offset -1), the second Pebble's (41).
const (
	prevOffsetsChangelog = "010801120cc0b5f39bfe634066697265641216c8d9f49bfe634070726f67726573732f636c69636b731220ffffffffffffffffff014070726f67726573732f7472616e73616374696f6e731208f001636c69636b73120d0e7472616e73616374696f6e73"
	prevOffsetsStored    = "010852120cc0b5f39bfe634066697265641216c8d9f49bfe634070726f67726573732f636c69636b731220ffffffffffffffffff014070726f67726573732f7472616e73616374696f6e731208f001636c69636b73120d0e7472616e73616374696f6e73"
)

func prevOffsets(t *testing.T, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	must(t, err)
	return b
}

// checkPrevOffsets checks that o holds what the previous release's record
// says, in the typed fields.
func checkPrevOffsets(t *testing.T, o Offsets, changelog int64) {
	t.Helper()
	want := Offsets{
		Inputs:    map[string]int64{"clicks": 120, "transactions": 7},
		Progress:  map[string]int64{"clicks": 1717747750500, "transactions": math.MinInt64},
		Fired:     1717747740000,
		HasFired:  true,
		Changelog: changelog,
		Persisted: o.Persisted,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("offsets:\n got %+v\nwant %+v", o, want)
	}
}

// TestProgressFromPreviousRelease: a store and a changelog written by the
// release that kept event-time progress under magic input names restore with
// it, in Offsets.Progress and Offsets.Fired.
func TestProgressFromPreviousRelease(t *testing.T) {
	t.Run("changelog", func(t *testing.T) {
		s := openStore(t, vfs.NewMem())
		defer closeStore(t, s)
		p := part(t, s, 3)
		must(t, p.ApplyChangelog([]byte{kindMeta, 'o', 'f', 'f', 's', 'e', 't', 's'}, prevOffsets(t, prevOffsetsChangelog), 41))
		must(t, p.FlushRestore())
		o, err := p.Offsets()
		must(t, err)
		checkPrevOffsets(t, o, 41)
	})
	t.Run("store", func(t *testing.T) {
		fs := vfs.NewMem()
		s := openStore(t, fs)
		must(t, s.db.Set(appendMetaKey(nil, 3, metaOffsets), prevOffsets(t, prevOffsetsStored), pebble.Sync))
		closeStore(t, s)
		s = openStore(t, fs)
		defer closeStore(t, s)
		o, err := part(t, s, 3).Offsets()
		must(t, err)
		checkPrevOffsets(t, o, 41)
	})
}

// TestProgressBytes: the typed setters write the bytes the previous release
// wrote, so that it too reads a changelog or a store of this one; and the
// progress survives a commit, a reopen and a restore from the changelog.
func TestProgressBytes(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs)
	p := part(t, s, 3)
	p.SetOffset("clicks", 120)
	p.SetOffset("transactions", 7)
	p.SetProgress("clicks", 1717747750500)
	p.SetProgress("transactions", math.MinInt64)
	p.SetFired(1717747740000)
	log := runBatch(t, p, nil)
	if len(log) != 1 || hex.EncodeToString(log[0].value) != prevOffsetsChangelog {
		t.Fatalf("changelog: %d records, offsets record %x, want %s", len(log), log[len(log)-1].value, prevOffsetsChangelog)
	}
	o, err := p.Offsets()
	must(t, err)
	checkPrevOffsets(t, o, 0)
	closeStore(t, s)

	s = openStore(t, fs)
	o, err = part(t, s, 3).Offsets()
	must(t, err)
	checkPrevOffsets(t, o, 0)
	closeStore(t, s)

	s = openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p = part(t, s, 3)
	must(t, p.ApplyChangelog(log[0].key, log[0].value, log[0].offset))
	must(t, p.FlushRestore())
	o, err = p.Offsets()
	must(t, err)
	checkPrevOffsets(t, o, 0)

	// A partition without progress has none.
	q := part(t, s, 4)
	q.SetOffset("clicks", 1)
	runBatch(t, q, nil)
	o, err = q.Offsets()
	must(t, err)
	if len(o.Progress) != 0 || o.HasFired || o.Inputs["clicks"] != 1 {
		t.Fatalf("offsets without progress: %+v", o)
	}
}

// TestSetOffsetRefusesReservedNames: no topic name starts with '@', and
// letting one through would read back as progress.
func TestSetOffsetRefusesReservedNames(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 0)
	defer func() {
		if recover() == nil {
			t.Fatal("SetOffset of a reserved name did not panic")
		}
	}()
	p.SetOffset("@progress/clicks", 1)
}
