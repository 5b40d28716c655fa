package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/triggerd/triggerd/schemas"
)

// harness runs a Set over scripted events with a virtual clock: timers live
// in a map and fire, in due order, when "advance" moves the clock past them.
type harness struct {
	set       *Set
	now       time.Time
	customers map[schemas.CustomerID]*schemas.Customer
	timers    map[TimerRef]schemas.Timer
	seq       int
}

func newHarness(t *testing.T, cfg Config) *harness {
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		set: s, now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
		customers: map[schemas.CustomerID]*schemas.Customer{}, timers: map[TimerRef]schemas.Timer{},
	}
}

func (h *harness) customer(id schemas.CustomerID) *schemas.Customer {
	c := h.customers[id]
	if c == nil {
		c = &schemas.Customer{ID: id}
		h.customers[id] = c
	}
	return c
}

func (h *harness) apply(a *Actions, out *strings.Builder) {
	for _, ref := range a.Cancel {
		delete(h.timers, ref)
	}
	for _, t := range a.Schedule {
		h.timers[TimerRef{Customer: t.Customer, ID: t.ID}] = t
	}
	for _, tr := range a.Emit {
		fmt.Fprintf(out, "trigger %s %s stage=%d channel=%s due=+%s items=%d value=%s\n",
			tr.Customer, tr.Kind, tr.Stage, tr.Channel, tr.DueAt.Sub(h.start()), len(tr.Items), tr.Value)
	}
}

func (h *harness) start() time.Time { return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) }

// advance fires, in due order, every timer due up to the new clock.
func (h *harness) advance(d time.Duration, out *strings.Builder) {
	until := h.now.Add(d)
	for {
		var due []schemas.Timer
		for _, t := range h.timers {
			if !t.Due.After(until) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			break
		}
		// Due order, ties by customer then ID: the order state.PopDue uses.
		sort.Slice(due, func(i, j int) bool {
			a, b := due[i], due[j]
			if !a.Due.Equal(b.Due) {
				return a.Due.Before(b.Due)
			}
			if a.Customer != b.Customer {
				return a.Customer < b.Customer
			}
			return a.ID < b.ID
		})
		t := due[0]
		delete(h.timers, TimerRef{Customer: t.Customer, ID: t.ID})
		h.now = t.Due
		var a Actions
		h.set.OnTimer(h.customer(t.Customer), &t, &a)
		h.apply(&a, out)
	}
	h.now = until
}

func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness(t, DefaultConfig())
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			switch d.Cmd {
			case "event":
				// event CUSTOMER TYPE [product=P] [qty=N] [price=MINOR]
				h.seq++
				ev := schemas.Event{ID: "ev" + strconv.Itoa(h.seq), Customer: schemas.CustomerID(d.CmdArgs[0].Key),
					Type: schemas.EventType(d.CmdArgs[1].Key), Time: h.now, Source: schemas.SourceClickstream}
				if ev.Type == schemas.Purchase || ev.Type == schemas.Refund {
					ev.Source = schemas.SourceTransaction
					ev.Amount = schemas.Money{Minor: 1000, Currency: "EUR"}
				}
				for _, a := range d.CmdArgs[2:] {
					switch a.Key {
					case "product":
						ev.ProductID = a.Vals[0]
					case "qty":
						n, _ := strconv.Atoi(a.Vals[0])
						ev.Quantity = int32(n)
					case "price":
						n, _ := strconv.ParseInt(a.Vals[0], 10, 64)
						ev.Price = schemas.Money{Minor: n, Currency: "EUR"}
					}
				}
				var a Actions
				h.set.OnEvent(h.customer(ev.Customer), &ev, &a)
				h.apply(&a, &out)
			case "advance":
				dur, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					t.Fatal(err)
				}
				h.advance(dur, &out)
			case "timers":
				var lines []string
				for _, tm := range h.timers {
					lines = append(lines, fmt.Sprintf("timer %s %s stage=%d due=+%s", tm.Customer, tm.ID, tm.Stage, tm.Due.Sub(h.start())))
				}
				sort.Strings(lines)
				for _, l := range lines {
					out.WriteString(l + "\n")
				}
			default:
				t.Fatalf("unknown command %q", d.Cmd)
			}
			if out.Len() == 0 {
				return "ok\n"
			}
			return out.String()
		})
	})
}

func TestTriggerIDDeterministic(t *testing.T) {
	a := TriggerID("c1", "cart_abandoned", 1, 1, "ev1")
	if a != TriggerID("c1", "cart_abandoned", 1, 1, "ev1") {
		t.Fatal("same inputs, different IDs")
	}
	for _, other := range []string{
		TriggerID("c2", "cart_abandoned", 1, 1, "ev1"),
		TriggerID("c1", "cart_abandoned", 2, 1, "ev1"),
		TriggerID("c1", "cart_abandoned", 1, 2, "ev1"),
		TriggerID("c1", "cart_abandoned", 1, 1, "ev2"),
		// Length-prefixed fields: moving a byte between fields changes the ID.
		TriggerID("c1c", "art_abandoned", 1, 1, "ev1"),
	} {
		if other == a {
			t.Errorf("distinct inputs share ID %s", a)
		}
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CartAbandonment.Stage1Delay = 0
	cfg.CartAbandonment.Stage2Channel = ""
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "stage1_delay") || !strings.Contains(err.Error(), "stage2_channel") {
		t.Fatalf("Validate() = %v, want both problems", err)
	}
}
