package system

import (
	"github.com/triggerd/triggerd/processor"

	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// The reference model of the cart abandonment rule, written from the
// behaviour catalogue and the trigger contract, not from rules/: per
// customer, events apply in event-time order (ties: clickstream, then
// transactions, then profiles, then offset); a timer due at T fires before
// the first event at or after T + lateness; the final tick fires everything
// still pending.

type modelConfig struct {
	version        int32
	stage1, stage2 time.Duration
	lateness       time.Duration
}

// cartModel is the cart abandonment rule as the system tests run it:
// docs/scenarios.md's 1 h and 24 h, version 1, no allowed lateness.
var cartModel = modelConfig{version: 1, stage1: time.Hour, stage2: 24 * time.Hour, lateness: 0}

// liveCartModel is the cart rule of the scenarios run in the default
// configuration: stages seconds apart, so that they fire while the workload
// (stamped as it is written) is written, and the default lateness.
var liveCartModel = modelConfig{version: 1, stage1: 3 * time.Second, stage2: 5 * time.Second, lateness: processor.DefaultConfig().Lateness}

type modelEvent struct {
	source schemas.Source
	seq    int // production order within the source
	id     string
	typ    schemas.EventType
	at     time.Time
	prod   string
	qty    int32
}

type modelTimer struct {
	due        time.Time
	stage      int32
	occurrence string
}

// modelCustomer is the part of a customer's final state the model knows:
// the events it saw, its purchases and its cart (product -> quantity).
type modelCustomer struct {
	events, purchases int64
	cart              map[string]int32
}

// expectTriggers returns the IDs of every trigger the workload must
// produce, with "customer/stage" for messages.
func expectTriggers(cfg modelConfig, events map[schemas.CustomerID][]modelEvent) map[string]string {
	want, _ := expect(cfg, events)
	return want
}

// expect returns the triggers (as expectTriggers) and every customer's
// final state.
func expect(cfg modelConfig, events map[schemas.CustomerID][]modelEvent) (map[string]string, map[schemas.CustomerID]modelCustomer) {
	want := map[string]string{}
	final := map[schemas.CustomerID]modelCustomer{}
	for cust, evs := range events {
		sort.SliceStable(evs, func(i, j int) bool {
			a, b := evs[i], evs[j]
			if !a.at.Equal(b.at) {
				return a.at.Before(b.at)
			}
			if a.source != b.source {
				return a.source < b.source
			}
			return a.seq < b.seq
		})
		cart := map[string]int32{}
		lastChange := ""
		var timer *modelTimer
		// fire fires the pending timer (and the stage it schedules)
		// while it is due before an event at `at`; all fires regardless.
		fire := func(at time.Time, all bool) {
			for timer != nil && (all || !at.Before(timer.due.Add(cfg.lateness))) {
				t := *timer
				timer = nil
				if len(cart) == 0 || lastChange != t.occurrence {
					return // exit criteria re-checked at fire time
				}
				want[triggerID(cust, "cart_abandoned", cfg.version, t.stage, t.occurrence)] = fmt.Sprintf("%s/%d", cust, t.stage)
				if t.stage == 1 {
					timer = &modelTimer{due: t.due.Add(cfg.stage2), stage: 2, occurrence: t.occurrence}
				}
			}
		}
		for _, e := range evs {
			fire(e.at, false)
			changed := false
			switch e.typ {
			case schemas.AddToCart:
				q := e.qty
				if q <= 0 {
					q = 1
				}
				cart[e.prod] += q
				changed = true
			case schemas.RemoveFromCart:
				if have, ok := cart[e.prod]; ok {
					if e.qty > 0 && e.qty < have {
						cart[e.prod] = have - e.qty
					} else {
						delete(cart, e.prod)
					}
					changed = true
				}
			case schemas.Purchase:
				timer = nil
				if len(cart) > 0 {
					clear(cart)
					lastChange = e.id
				}
				continue
			}
			if !changed {
				continue
			}
			lastChange = e.id
			if len(cart) == 0 {
				timer = nil
			} else {
				timer = &modelTimer{due: e.at.Add(cfg.stage1), stage: 1, occurrence: e.id}
			}
		}
		fire(time.Time{}, true) // the final tick
		mc := modelCustomer{events: int64(len(evs)), cart: cart}
		for _, e := range evs {
			if e.typ == schemas.Purchase {
				mc.purchases++
			}
		}
		final[cust] = mc
	}
	return want, final
}

// triggerID is the trigger contract's ID: SHA-256 over the length-prefixed
// customer, rule and occurrence and the big-endian version and stage, first
// 16 bytes in hex.
func triggerID(c schemas.CustomerID, rule string, version, stage int32, occurrence string) string {
	h := sha256.New()
	field := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(string(c))
	field(rule)
	var vs [8]byte
	binary.BigEndian.PutUint32(vs[:4], uint32(version))
	binary.BigEndian.PutUint32(vs[4:], uint32(stage))
	h.Write(vs[:])
	field(occurrence)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
