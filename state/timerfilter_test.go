package state

import (
	"fmt"
	"testing"
)

// The filter never forgets a ref it was given, and says yes to few it was
// not: about 1% when filled to its capacity.
func TestTimerFilter(t *testing.T) {
	const n = 100_000
	f := newTimerFilter(n)
	for i := range n {
		f.add(fmt.Appendf(nil, "customer-%d\x00\x01cart_abandoned", i))
	}
	if f.full() {
		t.Fatalf("full after %d refs, sized for %d", n, n)
	}
	for i := range n {
		if !f.mayHave(fmt.Appendf(nil, "customer-%d\x00\x01cart_abandoned", i)) {
			t.Fatalf("ref %d added but not found", i)
		}
	}
	fp := 0
	for i := range n {
		if f.mayHave(fmt.Appendf(nil, "customer-%d\x00\x01other", i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Fatalf("false positive rate %.4f, want about 0.01", rate)
	}
	f.add([]byte("one more"))
	if !f.full() {
		t.Fatalf("not full after %d refs, sized for %d", n+1, n)
	}
}
