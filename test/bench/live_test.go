package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/schemas"
)

type liveResult struct {
	rate    float64 // events/s produced while measuring
	latency []time.Duration
	// processed is the part of each latency before the processor fired
	// the trigger (its FiredAt): the wait for a poll and the event-time
	// ordering of the inputs; the rest is the cycle's end (flush, commit)
	// and the reader's fetch.
	processed []time.Duration
	// timerLag is, for each timer probe (timerProbeRule) due while
	// measuring, its trigger's read time minus the timer's due time.
	timerLag   []time.Duration
	fireLagP99 string
	fired      float64 // timers fired while measuring
	pending    float64 // timers pending at the end
	triggers   float64
	behind     int64 // probe purchases produced while measuring without their trigger read
}

// runLive produces live traffic at rate events/s (event time = wall clock)
// for s.warmup + s.live, and measures, over the last s.live: the latency
// from each purchase's event time to its probe trigger being read by a
// read_committed consumer, and the processor's timer fire lag histogram
// (scraped from its /metrics before and after).
func runLive(b *testing.B, s settings, k *cluster, reg *sr.Client, in inputs, triggers, ops string, rate float64, alive func() error) liveResult {
	var res liveResult
	dec, err := schemas.NewTriggerDecoder(schemas.FormatAvro, reg)
	if err != nil {
		b.Fatal(err)
	}
	cons := k.client(b, kgo.ConsumeTopics(triggers), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Join the partitions at their end before producing.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	cons.PollFetches(pctx)
	pcancel()

	start := time.Now()
	measureFrom := start.Add(s.warmup)
	end := measureFrom.Add(s.live)
	var mu sync.Mutex
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		var tr schemas.Trigger
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var rule string
				for _, h := range r.Headers {
					if h.Key == "rule_id" {
						rule = string(h.Value)
					}
				}
				if rule != "bench_probe" && rule != "bench_timer_probe" {
					return
				}
				if err := dec.Decode(r.Value, &tr); err != nil {
					return
				}
				if tr.DueAt.Before(measureFrom) || !tr.DueAt.Before(end) {
					return
				}
				mu.Lock()
				if rule == "bench_probe" {
					res.latency = append(res.latency, now.Sub(tr.DueAt))
					res.processed = append(res.processed, tr.FiredAt.Sub(tr.DueAt))
				} else {
					res.timerLag = append(res.timerLag, now.Sub(tr.DueAt))
				}
				mu.Unlock()
			})
		}
	}()

	w := newEventWriter(b, k, reg, in.topics, s.partitions)
	wc := workload.DefaultConfig()
	wc.Customers, wc.AllKinds, wc.Attributes, wc.Seed = s.customers, true, true, uint64(time.Now().UnixNano())
	gen := workload.New(wc)
	var ev schemas.Event
	const slice = 10 * time.Millisecond
	tick := time.NewTicker(slice)
	defer tick.Stop()
	var before metricSet
	var produced, purchases int64
	credit := 0.0
	for now := time.Now(); now.Before(end); now = <-tick.C {
		if err := alive(); err != nil {
			b.Fatalf("processor died in the live phase: %v", err)
		}
		if before == nil && !now.Before(measureFrom) {
			before = scrape(b, ops)
		}
		credit += rate * slice.Seconds()
		for ; credit >= 1; credit-- {
			gen.Next(time.Now(), &ev)
			w.write(&ev)
			if !ev.Time.Before(measureFrom) {
				produced++
				if ev.Type == schemas.Purchase {
					purchases++
				}
			}
		}
	}
	w.flush()
	// Give the last events time to be processed and read.
	time.Sleep(2*time.Second + s.lateness)
	after := scrape(b, ops)
	cancel()
	<-readDone
	res.rate = float64(produced) / s.live.Seconds()
	res.fired = after.sum("triggerd_timers_fired_total") - before.sum("triggerd_timers_fired_total")
	res.pending = after.sum("triggerd_timers_pending")
	res.triggers = after.sum("triggerd_output_triggers_total")
	res.fireLagP99 = histQuantile(after.diff(before, "triggerd_timers_fire_lag_seconds_bucket"), 0.99)
	res.behind = purchases - int64(len(res.latency))
	if res.behind < 0 {
		res.behind = 0
	}
	return res
}

// metricSet is a scrape: series (name plus labels) to value.
type metricSet map[string]float64

func scrape(b *testing.B, ops string) metricSet {
	resp, err := http.Get("http://" + ops + "/metrics")
	if err != nil {
		b.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	m := metricSet{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

// sum adds every series of the metric name.
func (m metricSet) sum(name string) float64 {
	var t float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}

// diff returns the histogram's cumulative buckets (upper bound → count)
// observed between before and m. bucket is the series' name, or its name
// and the labels before le (`name{phase="end",`) to pick one histogram of
// a vector.
func (m metricSet) diff(before metricSet, bucket string) map[float64]float64 {
	prefix := bucket + `{le="`
	if strings.HasSuffix(bucket, ",") {
		prefix = bucket + `le="`
	}
	out := map[float64]float64{}
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le := strings.TrimSuffix(rest, `"}`)
		ub := math.Inf(1)
		if le != "+Inf" {
			ub, _ = strconv.ParseFloat(le, 64)
		}
		out[ub] = v - before[k]
	}
	return out
}

// histQuantile returns the q-quantile of cumulative buckets as the upper
// bound of the bucket it falls in ("<=0.08s"), or "-" with no observation.
func histQuantile(buckets map[float64]float64, q float64) string {
	var ubs []float64
	for ub := range buckets {
		ubs = append(ubs, ub)
	}
	sort.Float64s(ubs)
	if len(ubs) == 0 || buckets[ubs[len(ubs)-1]] == 0 {
		return "-"
	}
	total := buckets[ubs[len(ubs)-1]]
	for _, ub := range ubs {
		if buckets[ub] >= q*total {
			if math.IsInf(ub, 1) {
				return fmt.Sprintf(">%gs", ubs[len(ubs)-2])
			}
			return fmt.Sprintf("<=%gs", ub)
		}
	}
	return "-"
}

// logCycles logs what the processor's own metrics say about a phase: its
// cycles (each one transaction, or one flush in at-least-once mode), the
// events each carried and what they took, and the offsets each output topic
// advanced per event (records, plus one transaction marker per partition
// and transaction in exactly-once mode). They explain a throughput figure:
// many small cycles write the hot customers' records again and again.
func logCycles(b *testing.B, cluster, mode string, events int64, before, after metricSet, topics []string, outBefore, outAfter kadm.ListedOffsets) {
	cycles := after.sum("triggerd_cycle_seconds_count") - before.sum("triggerd_cycle_seconds_count")
	secs := after.sum("triggerd_cycle_seconds_sum") - before.sum("triggerd_cycle_seconds_sum")
	var sb strings.Builder
	for _, t := range topics {
		var n int64
		outAfter.Each(func(o kadm.ListedOffset) {
			if o.Topic == t {
				n += o.Offset
			}
		})
		outBefore.Each(func(o kadm.ListedOffset) {
			if o.Topic == t {
				n -= o.Offset
			}
		})
		fmt.Fprintf(&sb, " %s=%.2f", t, float64(n)/float64(max(events, 1)))
	}
	logf("%s %s: %d events in %.0f cycles (%.0f events/cycle, %.1f ms/cycle, p99 %s); output offsets per event:%s",
		cluster, mode, events, cycles, float64(events)/max(cycles, 1), 1000*secs/max(cycles, 1),
		histQuantile(after.diff(before, "triggerd_cycle_seconds_bucket"), 0.99), sb.String())
	d := func(name string) float64 { return after.sum(name) - before.sum(name) }
	var phases strings.Builder
	for _, ph := range []string{"process", "flush", "end", "apply"} {
		sel := `{phase="` + ph + `"}`
		if n := d("triggerd_cycle_phase_seconds_count" + sel); n > 0 {
			fmt.Fprintf(&phases, " %s %.1f (p99 %s)", ph, 1000*d("triggerd_cycle_phase_seconds_sum"+sel)/n,
				histQuantile(after.diff(before, `triggerd_cycle_phase_seconds_bucket{phase="`+ph+`",`), 0.99))
		}
	}
	logf("%s %s: ms per cycle by phase (p99 bucket in s):%s", cluster, mode, phases.String())
	wal := d("triggerd_store_wal_bytes_total")
	hits, misses := d("triggerd_store_block_cache_hits_total"), d("triggerd_store_block_cache_misses_total")
	logf("%s %s: store: WAL %.0f B/event, flushed %.0f MB, compacted %.0f MB (write amplification %.1f), %.0f compactions taking %.1f s, block cache hits %.1f%%, %.0f write stalls (%.1f s); compaction debt at the start %.0f MB; at the end: %.0f MB on disk, L0 %.0f sublevels, compaction debt %.0f MB",
		cluster, mode, wal/float64(max(events, 1)), d("triggerd_store_flushed_bytes_total")/1e6, d("triggerd_store_compacted_bytes_total")/1e6,
		(d("triggerd_store_flushed_bytes_total")+d("triggerd_store_compacted_bytes_total"))/max(wal, 1),
		d("triggerd_store_compactions_total"), d("triggerd_store_compaction_seconds_total"), 100*hits/max(hits+misses, 1),
		d("triggerd_store_write_stalls_total"), d("triggerd_store_write_stall_seconds_total"),
		before.sum("triggerd_store_compaction_debt_bytes")/1e6,
		after.sum("triggerd_store_disk_bytes")/1e6, after.sum("triggerd_store_l0_sublevels"), after.sum("triggerd_store_compaction_debt_bytes")/1e6)
	// The changelog's records by what they hold: the store's cost follows
	// entries more than bytes (DESIGN.md), and these are the entries.
	var chlog strings.Builder
	for _, kind := range []string{"customer", "timer", "held", "offsets"} {
		sel := `triggerd_changelog_records_total{kind="` + kind + `",op=`
		set, del := d(sel+`"set"}`), d(sel+`"delete"}`)
		fmt.Fprintf(&chlog, " %s %.3f (tombstones %.3f)", kind, (set+del)/float64(max(events, 1)), del/float64(max(events, 1)))
	}
	logf("%s %s: changelog records per event by kind:%s", cluster, mode, chlog.String())
	breakdownOf(cluster, mode, events, before, after) // breakdown_test.go
}

// logMemory logs where the processor's memory is: resident, the Go heap and
// what the Go runtime holds from the OS in all (GOMEMLIMIT bounds that), and
// Pebble's block cache and memtables (Go memory in the release build, which
// has no cgo).
func logMemory(b *testing.B, cluster, what string, m metricSet) {
	mb := func(name string) float64 { return m.sum(name) / (1 << 20) }
	logf("%s %s: memory: RSS %.0fM; Go heap in use %.0fM, Go runtime total %.0fM; Pebble block cache %.0fM, memtables %.0fM",
		cluster, what, mb("process_resident_memory_bytes"), mb("go_memstats_heap_inuse_bytes"), mb("go_memstats_sys_bytes"),
		mb("triggerd_store_block_cache_bytes"), mb("triggerd_store_memtable_bytes"))
}
