package processor

import "testing"

// TestDecodedFreeListBounded: a cycle that decodes many records leaves at
// most maxFreeDecoded of them for reuse, and a reused one leaves no pointer
// behind in the list's array (which the GC scans whole).
func TestDecodedFreeListBounded(t *testing.T) {
	w := &worker{}
	ds := make([]*decoded, 3*maxFreeDecoded)
	for i := range ds {
		ds[i] = w.takeDecoded()
	}
	for _, d := range ds {
		w.putDecoded(d)
	}
	if len(w.free) != maxFreeDecoded {
		t.Fatalf("free list holds %d decoded events, want %d", len(w.free), maxFreeDecoded)
	}
	d := w.takeDecoded()
	if d != ds[maxFreeDecoded-1] {
		t.Fatal("takeDecoded did not reuse the last one given back")
	}
	if stale := w.free[:len(w.free)+1][len(w.free)]; stale != nil {
		t.Fatal("the reused event is still referenced from the free list's array")
	}
}
