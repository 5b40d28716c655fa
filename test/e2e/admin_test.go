package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/processor/admin"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

const adminToken = "e2e-admin-token"

// instance is one in-process processor with its admin API.
type instance struct {
	proc  *processor.Processor
	store *state.Store
	url   string
}

// startInstance runs a processor in the group of cfg under instance ID id,
// with its admin API on a free local port (advertised in the group).
func startInstance(t *testing.T, cfg processor.Config, rs *rules.Set, id string, writes bool, clock func() time.Time) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.InstanceID = id
	in := &instance{url: "http://" + ln.Addr().String()}
	in.proc, in.store = harness.StartProcessor(t, cfg, rs, nil, processor.Options{AdminAddress: in.url, Clock: clock})
	api, err := admin.New(in.proc, in.store, admin.Config{Token: adminToken, AllowWrites: writes}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewHTTPServer("")
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return in
}

// TestAdminAPI runs two instances in one group, each owning some
// partitions, and checks the admin API end to end: the owner answers with
// the customer's state and decisions (a fired trigger, a cap suppression, a
// quiet-hours deferral and drop), the other instance redirects to it, the
// token is required, a read-only instance refuses an erase, and an erase
// through the API removes everything of the customer (also from a store
// restored from the changelog) and puts an erased record on the trigger
// topic.
func TestAdminAPI(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 4
	cfg := c.Topics(t, parts)
	rs, err := rules.Parse("policy.yaml", []byte(policyRules))
	if err != nil {
		t.Fatal(err)
	}
	noon := time.Now().UTC().Truncate(24 * time.Hour).Add(-72*time.Hour + 12*time.Hour)
	at := func(d time.Duration) time.Time { return noon.Add(d) }
	// The processors' clock stands at midnight of the test's day: the
	// erase event the API writes is stamped with it, and event time is
	// driven by ticks (idle_advance off), so the erase falls between the
	// 22:00 events and the deferred promo's release at 08:00.
	clock := func() time.Time { return at(12 * time.Hour) }
	a := startInstance(t, cfg, rs, "i1", true, clock)
	b := startInstance(t, cfg, rs, "i2", false, clock)
	insts := []*instance{a, b}

	// Wait until the group has settled with both: every partition served
	// by exactly one instance, and each serving some.
	owner := func(part int32) *instance {
		if a.proc.Serves(part) && !b.proc.Serves(part) {
			return a
		}
		if b.proc.Serves(part) && !a.proc.Serves(part) {
			return b
		}
		return nil
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		split := map[*instance]int{}
		for p := range int32(parts) {
			split[owner(p)]++
		}
		if split[nil] == 0 && split[a] > 0 && split[b] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two instances did not split the %d partitions within 90s: %v", parts, split)
		}
		time.Sleep(50 * time.Millisecond)
	}

	p := harness.NewProducer(t, c, cfg, nil)
	optIn := func(id, cust string, when time.Time) schemas.Event {
		return schemas.Event{Source: schemas.SourceProfile, ID: id, Customer: schemas.CustomerID(cust), Type: schemas.ProfileUpdate,
			Time: when, Profile: schemas.Profile{Country: "DE", OptIns: map[schemas.Channel]bool{schemas.ChannelEmail: true}}}
	}
	ev := func(id, cust string, typ schemas.EventType, when time.Time) schemas.Event {
		return schemas.Event{Source: schemas.SourceClickstream, ID: id, Customer: schemas.CustomerID(cust), Type: typ, Time: when}
	}
	// A neighbour of "night" on the same partition, which the erase must
	// leave alone.
	keeper := ""
	for i := 0; keeper == ""; i++ {
		if id := fmt.Sprintf("keeper-%d", i); processor.PartitionOf([]byte(id), parts) == processor.PartitionOf([]byte("night"), parts) {
			keeper = id
		}
	}
	evs := []schemas.Event{
		// Two emails go out, the third is capped.
		optIn("c0", "capped", at(-time.Minute)),
		ev("c1", "capped", "promo", at(time.Minute)),
		ev("c2", "capped", "promo", at(2*time.Minute)),
		ev("c3", "capped", "promo", at(3*time.Minute)),
		// One email at noon; at 22:00 promo is deferred, flash dropped.
		optIn("n0", "night", at(-time.Minute)),
		ev("n1", "night", "promo", at(time.Minute)),
		ev("n2", "night", "promo", at(10*time.Hour)),
		ev("n3", "night", "flash", at(10*time.Hour)),
		optIn("k0", keeper, at(-time.Minute)),
		ev("k1", keeper, "promo", at(time.Minute)),
	}
	p.Send(parts, evs...)
	p.Tick(parts, at(11*time.Hour))
	waitEvents(t, insts, int64(len(evs)+3*parts))
	triggers := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)
	checkKinds(t, "before the erase", triggers.Read(4, time.Second, 60*time.Second),
		[]string{"capped/promo", "capped/promo", keeper + "/promo", "night/promo"})

	nightPart := processor.PartitionOf([]byte("night"), parts)
	cappedOwner := owner(processor.PartitionOf([]byte("capped"), parts))
	other := a
	if cappedOwner == a {
		other = b
	}

	// The owner answers.
	var view admin.CustomerView
	status, body := call(t, cappedOwner.url, "GET", "/customers/capped", adminToken)
	if status != http.StatusOK {
		t.Fatalf("owner: GET capped: %d %s", status, body)
	}
	mustJSON(t, body, &view)
	if !view.Found || view.Events != 4 || len(view.Contacts) != 2 || view.Profile.Country != "DE" || !view.Profile.OptIns["email"] ||
		view.Instance != cappedOwner.proc.InstanceID() || len(view.Decisions) != 3 {
		t.Errorf("owner's view of capped: %s", body)
	}

	// The other instance redirects to the owner, keeping the path.
	status, body, loc := callNoRedirect(t, other.url, "GET", "/customers/capped/explain", adminToken)
	if status != http.StatusTemporaryRedirect || loc != cappedOwner.url+"/customers/capped/explain" {
		t.Fatalf("non-owner: %d Location %q (owner %s): %s", status, loc, cappedOwner.url, body)
	}
	// The CLI's client follows it with the token, and explain shows the
	// decisions newest first: the cap suppression, then the two emails.
	cl := admin.Client{Base: other.url, Token: adminToken}
	_, body, err = cl.Do(context.Background(), "GET", "/customers/capped/explain")
	if err != nil {
		t.Fatal(err)
	}
	var ex admin.ExplainView
	mustJSON(t, body, &ex)
	if got := decisionLines(ex.Decisions); got != "promo v1 suppressed cap email_7d | promo v1 fired | promo v1 fired" {
		t.Errorf("explain capped: %q\n%s", got, body)
	}
	_, body, err = cl.Do(context.Background(), "GET", "/customers/night/explain")
	if err != nil {
		t.Fatal(err)
	}
	ex = admin.ExplainView{}
	mustJSON(t, body, &ex)
	if got := decisionLines(ex.Decisions); got != "flash v1 suppressed quiet_hours quiet_hours | promo v1 deferred quiet_hours quiet_hours | promo v1 fired" &&
		got != "promo v1 deferred quiet_hours quiet_hours | flash v1 suppressed quiet_hours quiet_hours | promo v1 fired" {
		t.Errorf("explain night: %q\n%s", got, body)
	}
	if len(ex.Waiting) != 1 || ex.Waiting[0].Deferred == nil || ex.Waiting[0].Deferred.Rule != "promo" || !ex.Waiting[0].Due.Equal(at(20*time.Hour)) {
		t.Errorf("night's deferred promo is not waiting until 08:00: %s", body)
	}
	// Attribute values are not in the audit trail.
	if bytes.Contains(body, []byte(`"DE"`)) {
		t.Errorf("explain carries a profile value: %s", body)
	}

	// Auth: no token, a wrong token, on every route and on both instances.
	for _, in := range insts {
		for _, route := range []struct{ method, path string }{
			{"GET", "/customers/capped"}, {"GET", "/customers/capped/explain"}, {"POST", "/customers/capped/erase"}, {"GET", "/nothing"},
		} {
			for _, tok := range []string{"", "wrong", adminToken + "x"} {
				if status, body, _ := callNoRedirect(t, in.url, route.method, route.path, tok); status != http.StatusUnauthorized {
					t.Errorf("%s %s with token %q: %d %s", route.method, route.path, tok, status, body)
				}
			}
		}
	}
	// The read-only instance refuses an erase.
	if status, body := call(t, b.url, "POST", "/customers/night/erase", adminToken); status != http.StatusForbidden {
		t.Errorf("read-only erase: %d %s", status, body)
	}

	// Erase night through the instance that allows it.
	status, body = call(t, a.url, "POST", "/customers/night/erase", adminToken)
	if status != http.StatusAccepted {
		t.Fatalf("erase: %d %s", status, body)
	}
	var acc admin.EraseAccepted
	mustJSON(t, body, &acc)
	if acc.Partition != nightPart || acc.Topic != cfg.Topics.Profiles || acc.EventID == "" {
		t.Errorf("erase receipt %s, want the profile topic's partition %d", body, nightPart)
	}
	// Past the erase's time (the processors' clock): a tick of the same
	// millisecond on clickstream, listed first, would go first.
	p.Tick(parts, at(12*time.Hour+time.Second))
	erased := readErased(t, c, cfg.Topics.Triggers)
	if erased.Customer != "night" || erased.Rule != schemas.EraseRule || len(erased.CausedBy) != 1 || erased.CausedBy[0] != acc.EventID {
		t.Errorf("erased record %+v, want customer night caused by %s", erased, acc.EventID)
	}
	waitErasures(t, insts, 1)
	if _, _, err := cl.Do(context.Background(), "GET", "/customers/night"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("GET night after the erase: %v, want not found", err)
	}
	if _, body, err := cl.Do(context.Background(), "GET", "/customers/"+keeper); err != nil || !strings.Contains(string(body), `"found": true`) {
		t.Errorf("the neighbour %s after the erase: %v %s", keeper, err, body)
	}

	// 08:30 the next morning: the deferred promo died with the customer.
	p.Tick(parts, at(20*time.Hour+30*time.Minute))
	waitEvents(t, insts, int64(len(evs)+1+9*parts)) // + the erase event
	for _, tr := range triggers.Read(0, 2*time.Second, 10*time.Second) {
		if tr.Customer == "night" && tr.Kind != schemas.KindErased {
			t.Errorf("a trigger of the erased customer after the erase: %+v", tr)
		}
	}

	// Nothing of night in the owner's store, nor in a store restored from
	// the changelog.
	noCustomer(t, owner(nightPart).store, nightPart, "night", keeper, "owner's store")
	restored := restoreChangelog(t, c, cfg.Topics.Changelog)
	noCustomer(t, restored, nightPart, "night", keeper, "store restored from the changelog")
}

func decisionLines(ds []admin.Decision) string {
	var out []string
	for _, d := range ds {
		line := fmt.Sprintf("%s v%d %s", d.Rule, d.Version, d.Action)
		if d.Reason != "" {
			line += " " + d.Reason + " " + d.Policy
		}
		out = append(out, line)
	}
	return strings.Join(out, " | ")
}

// noCustomer checks that no key or value of the partition holds the
// customer ID, and that the neighbour is still there.
func noCustomer(t *testing.T, s *state.Store, part int32, id, neighbour, what string) {
	t.Helper()
	keys := 0
	err := s.ScanPartition(part, func(k, v []byte) error {
		keys++
		if bytes.Contains(k, []byte(id)) || bytes.Contains(v, []byte(id)) {
			t.Errorf("%s: partition %d key %q (value %d bytes) still holds %q", what, part, k, len(v), id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs, found, err := s.ReadCustomer(part, schemas.CustomerID(neighbour)); err != nil || !found || cs.Customer.Events != 2 {
		t.Errorf("%s: the neighbour %s: found=%v events=%d err=%v (%d keys)", what, neighbour, found, cs.Customer.Events, err, keys)
	}
}

// restoreChangelog reads the changelog (read_committed) from the start to
// its end into an empty store, the way a restore does.
func restoreChangelog(t *testing.T, c *harness.Cluster, topic string) *state.Store {
	t.Helper()
	sc := state.DefaultConfig()
	sc.Dir, sc.FS = "restored", vfs.NewMem()
	store, err := state.Open(sc, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(c.Client(t)).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	parts := map[int32]bool{}
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("changelog not read to its end within a minute: %v left", left)
		}
		for _, r := range fetches.Records() {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			if r.Attrs.IsControl() {
				continue
			}
			parts[r.Partition] = true
			if err := store.Partition(r.Partition).ApplyChangelog(r.Key, r.Value, r.Offset); err != nil {
				t.Fatalf("changelog partition %d offset %d: %v", r.Partition, r.Offset, err)
			}
		}
	}
	for p := range parts {
		if err := store.Partition(p).FlushRestore(); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

// readErased reads the trigger topic (read_committed) until an erased
// record arrives, and checks its headers.
func readErased(t *testing.T, c *harness.Cluster, topic string) schemas.Trigger {
	t.Helper()
	dec, err := schemas.NewTriggerDecoder(schemas.FormatJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no erased record on the trigger topic within 60s")
		}
		for _, r := range fetches.Records() {
			var tr schemas.Trigger
			if err := dec.Decode(r.Value, &tr); err != nil {
				t.Fatalf("undecodable record on the trigger topic: %v", err)
			}
			if tr.Kind != schemas.KindErased {
				continue
			}
			h := map[string]string{}
			for _, hd := range r.Headers {
				h[hd.Key] = string(hd.Value)
			}
			if string(r.Key) != string(tr.Customer) || h[processor.HeaderKind] != schemas.KindErased || h[processor.HeaderTriggerID] != tr.ID {
				t.Errorf("erased record key %q headers %v, value %+v", r.Key, h, tr)
			}
			return tr
		}
	}
}

func waitEvents(t *testing.T, insts []*instance, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events committed", n), func() bool {
		var sum int64
		for _, in := range insts {
			sum += in.proc.Stats().Events
		}
		return sum >= n
	})
}

func waitErasures(t *testing.T, insts []*instance, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d erasures committed", n), func() bool {
		var sum int64
		for _, in := range insts {
			sum += in.proc.Stats().Erasures
		}
		return sum >= n
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 60s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func call(t *testing.T, base, method, path, token string) (int, []byte) {
	t.Helper()
	status, body, _ := callNoRedirect(t, base, method, path, token)
	return status, body
}

// callNoRedirect sends one request and returns the answer as is, a
// redirect included (its Location).
func callNoRedirect(t *testing.T, base, method, path, token string) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), resp.Header.Get("Location")
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}
