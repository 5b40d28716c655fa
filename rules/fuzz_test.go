package rules

import (
	"errors"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// FuzzParse feeds arbitrary bytes to the rules-file parser. Invariants:
//   - Parse never panics;
//   - a rejected file yields a *LoadError listing at least one problem,
//     each with the file name and a position (line >= 1, column >= 1);
//   - an accepted file yields a Set that evaluates an event and fires the
//     timers it scheduled without panicking, and every trigger it emits has
//     an ID, a rule and a customer.
//
// Seeds: the example rules, the cart-only rules, and the files in
// testdata/fuzz/FuzzParse (broken and edge-case files).
func FuzzParse(f *testing.F) {
	f.Add(Example())
	f.Add(CartOnlyYAML(time.Hour, 24*time.Hour))
	f.Add([]byte("rules: []\n"))
	f.Add([]byte("rules:\n  - id: x\n    version: 1\n    family: anomaly\n    channel: risk\n    on: [purchase]\n    when: event.amount > 100\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Errs) == 0 {
				t.Fatalf("Parse error %v (%T) is not a LoadError with problems", err, err)
			}
			for _, pe := range le.Errs {
				if pe.File != "fuzz.yaml" || pe.Line < 1 || pe.Column < 1 || pe.Msg == "" {
					t.Fatalf("problem without a position: %+v", pe)
				}
			}
			return
		}
		if s == nil {
			t.Fatal("Parse returned neither a Set nor an error")
		}
		at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		c := &schemas.Customer{ID: "c1"}
		var a Actions
		for i, typ := range []schemas.EventType{schemas.Signup, schemas.AddToCart, schemas.Purchase} {
			ev := schemas.Event{Source: schemas.SourceClickstream, ID: "e" + string(rune('0'+i)), Customer: c.ID, Type: typ, Time: at,
				ProductID: "p1", Quantity: 1, Price: schemas.Money{Minor: 500, Currency: "EUR"}}
			if typ == schemas.Purchase {
				ev.Source, ev.OrderID, ev.Amount = schemas.SourceTransaction, "o1", schemas.Money{Minor: 500, Currency: "EUR"}
			}
			a.Reset()
			s.OnEvent(c, &ev, &a)
			checkEmits(t, &a)
			timers := append([]schemas.Timer(nil), a.Schedule...)
			for j := range timers {
				a.Reset()
				s.OnTimer(c, &timers[j], &a)
				checkEmits(t, &a)
			}
		}
	})
}

func checkEmits(t *testing.T, a *Actions) {
	t.Helper()
	for _, tr := range a.Emit {
		if tr.ID == "" || tr.Rule == "" || tr.Customer == "" {
			t.Fatalf("trigger without ID, rule or customer: %+v", tr)
		}
	}
}
