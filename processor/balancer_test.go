package processor

import (
	"fmt"
	"slices"
	"testing"
)

// checkAssignment checks the invariants of every assignment: each number
// 0..n-1 goes to exactly one member, and the shares differ by at most one.
func checkAssignment(t *testing.T, n int32, got [][]int32) {
	t.Helper()
	seen := make([]int, n)
	lo, hi := int(n)+1, -1
	for _, ps := range got {
		for _, p := range ps {
			seen[p]++
		}
		lo, hi = min(lo, len(ps)), max(hi, len(ps))
	}
	for p, c := range seen {
		if c != 1 {
			t.Errorf("partition %d assigned %d times in %v", p, c, got)
		}
	}
	if len(got) > 0 && hi-lo > 1 {
		t.Errorf("unbalanced: shares from %d to %d in %v", lo, hi, got)
	}
}

// moved counts the numbers that leave their current owner.
func moved(owned, got [][]int32) int {
	n := 0
	for i := range owned {
		for _, p := range owned[i] {
			if !slices.Contains(got[i], p) {
				n++
			}
		}
	}
	return n
}

func TestAssignNumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n         int32
		owned     [][]int32
		maxMoved  int
		wantExact [][]int32 // nil: only the invariants and maxMoved
	}{
		{name: "first member takes all", n: 4, owned: [][]int32{nil}, wantExact: [][]int32{{0, 1, 2, 3}}},
		{name: "two new members split", n: 4, owned: [][]int32{nil, nil}, wantExact: [][]int32{{0, 1}, {2, 3}}},
		{name: "1 to 3 moves only what the new ones take", n: 12, owned: [][]int32{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, nil, nil}, maxMoved: 8},
		{name: "3 to 1 keeps the survivor's own", n: 12, owned: [][]int32{{4, 5, 6, 7}}, wantExact: [][]int32{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}},
		{name: "stable group moves nothing", n: 6, owned: [][]int32{{0, 3}, {1, 4}, {2, 5}}, maxMoved: 0, wantExact: [][]int32{{0, 3}, {1, 4}, {2, 5}}},
		{name: "uneven: the bigger owner keeps the extra", n: 5, owned: [][]int32{{0}, {1, 2, 3, 4}}, maxMoved: 1},
		{name: "a number claimed twice stays with the first", n: 2, owned: [][]int32{{0, 1}, {1}}, maxMoved: 1},
		{name: "owned numbers repeat once per topic", n: 4, owned: [][]int32{{0, 1, 0, 1, 0, 1}, {2, 3, 2, 3}}, maxMoved: 0},
		{name: "more members than partitions", n: 2, owned: [][]int32{{0, 1}, nil, nil}, maxMoved: 1},
		{name: "numbers past n (shrunk topic) are ignored", n: 2, owned: [][]int32{{0, 5}, {1, 7}}, maxMoved: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assignNumbers(tc.n, tc.owned)
			checkAssignment(t, tc.n, got)
			if tc.wantExact != nil && fmt.Sprint(got) != fmt.Sprint(tc.wantExact) {
				t.Errorf("got %v, want %v", got, tc.wantExact)
			}
			// Moves counted within range only (numbers past n must go).
			inRange := make([][]int32, len(tc.owned))
			for i, ps := range tc.owned {
				for _, p := range ps {
					if p < tc.n && !slices.Contains(inRange[i], p) {
						inRange[i] = append(inRange[i], p)
					}
				}
			}
			if m := moved(inRange, got); tc.wantExact == nil && m > tc.maxMoved {
				t.Errorf("%d partitions moved, want at most %d: %v -> %v", m, tc.maxMoved, tc.owned, got)
			}
		})
	}
}

// TestAssignNumbersDeterministic: every leader must compute the same plan.
func TestAssignNumbersDeterministic(t *testing.T) {
	owned := [][]int32{{3, 1}, {0}, nil, {2, 5, 4}}
	first := fmt.Sprint(assignNumbers(9, owned))
	for range 50 {
		if got := fmt.Sprint(assignNumbers(9, owned)); got != first {
			t.Fatalf("plan changed between runs: %s then %s", first, got)
		}
	}
}
