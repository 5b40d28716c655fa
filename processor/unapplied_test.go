package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// Both guarantees skip polled records below the offset the state says
// comes next: at-least-once after a crash between apply and the group
// commit, exactly-once when the group's offsets are behind the state's.
func TestUnappliedSkipsWhatTheStateHolds(t *testing.T) {
	recs := func(from, to int64) []*kgo.Record {
		var rs []*kgo.Record
		for o := from; o < to; o++ {
			rs = append(rs, &kgo.Record{Topic: "clicks", Partition: 2, Offset: o})
		}
		return rs
	}
	p := &Processor{log: zaptest.NewLogger(t)}
	for _, g := range []guarantee{&exactlyOnce{p: p}, &atLeastOnce{p: p}} {
		for _, c := range []struct {
			next      int64
			wantFirst int64
			wantN     int
		}{
			{next: -1, wantFirst: 5, wantN: 5}, // nothing known: keep all
			{next: 5, wantFirst: 5, wantN: 5},  // the usual case
			{next: 3, wantFirst: 5, wantN: 5},  // the state is behind: keep all
			{next: 8, wantFirst: 8, wantN: 2},  // the state holds 5, 6 and 7
			{next: 10, wantN: 0},               // the state holds them all
		} {
			got := g.unapplied(recs(5, 10), c.next)
			if len(got) != c.wantN || (c.wantN > 0 && got[0].Offset != c.wantFirst) {
				t.Errorf("%T.unapplied(5..9, next %d) = %d records from %v, want %d from %d",
					g, c.next, len(got), firstOffset(got), c.wantN, c.wantFirst)
			}
		}
	}
}

func firstOffset(rs []*kgo.Record) any {
	if len(rs) == 0 {
		return "none"
	}
	return rs[0].Offset
}
