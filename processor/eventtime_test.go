package processor

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEventTime drives the event-time merge and the watermark of one
// partition worker (eventtime.go) with the scripts in testdata/eventtime:
//
//	config idle_advance=true idle_grace=500ms lateness=0s
//	queue input=0 ts=1000 arrived=5000   a record admitted (times in ms)
//	seen input=1 ts=900                  an input's highest time seen
//	caughtup input=1 at=5600             an end-offset check found it caught up
//	drain now=6000                       apply what may go, in order
//	watermark now=6000
//	grace-wait                           whether records wait for an idle input's grace
//
// Inputs are 0 clickstream, 1 transactions, 2 profiles. With config raw=0,
// input 0 is a raw input's internal topic (repartition_order.go):
//
//	rawparts input=0 n=3                 the raw topic's partition count
//	queue input=0 ts=1000 arrived=5000 part=2   a record of raw partition 2
//	restart                              the worker reloads its held records
func TestEventTime(t *testing.T) {
	datadriven.Walk(t, "testdata/eventtime", func(t *testing.T, path string) {
		var w *worker
		var nextOffset int64 // records' offsets, increasing across inputs
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key string) int64 {
				var v int64
				d.ScanArgs(t, key, &v)
				return v
			}
			switch d.Cmd {
			case "config":
				cfg := DefaultConfig()
				raw := -1
				for _, a := range d.CmdArgs {
					switch a.Key {
					case "raw":
						d.ScanArgs(t, "raw", &raw)
					case "idle_advance":
						cfg.IdleAdvance = a.Vals[0] == "true"
					case "idle_grace", "lateness":
						v, err := time.ParseDuration(a.Vals[0])
						if err != nil {
							d.Fatalf(t, "%s: %v", a.Key, err)
						}
						if a.Key == "lateness" {
							cfg.Lateness = v
						} else {
							cfg.IdleGrace = v
						}
					default:
						d.Fatalf(t, "unknown argument %s", a.Key)
					}
				}
				w = &worker{workerEnv: &workerEnv{cfg: &cfg}, inputs: make([]input, 3), firedTo: noTime}
				for i := range w.inputs {
					w.inputs[i].topic = fmt.Sprint("input", i)
					w.inputs[i].maxTs = noTime
				}
				if raw >= 0 {
					w.inputs[raw].raw = &rawOrder{low: noTime}
				}
				return ""
			case "queue":
				in := &w.inputs[arg("input")]
				ts := arg("ts")
				nextOffset++
				r := &kgo.Record{Offset: nextOffset}
				if d.HasArg("part") {
					r.Headers = []kgo.RecordHeader{{Key: rawPartitionHeader, Value: []byte(fmt.Sprint(arg("part")))}}
				}
				in.enqueue(queued{r: r, ts: ts, arrived: arg("arrived"), late: w.late(ts)})
				in.maxTs = max(in.maxTs, ts)
				return ""
			case "rawparts":
				w.inputs[arg("input")].raw.setParts(int(arg("n")))
				return ""
			case "restart":
				// What a restart keeps: the held records (offset
				// order, as the state lists them), not what the
				// worker had seen.
				for i := range w.inputs {
					in := &w.inputs[i]
					var live []queued
					_ = in.queue.each(func(q *queued) error { live = append(live, *q); return nil })
					slices.SortFunc(live, func(a, b queued) int { return int(a.r.Offset - b.r.Offset) })
					in.queue.reset()
					for _, q := range live {
						in.queue.append(q)
					}
					in.caughtUpAt = 0
				}
				w.reloaded()
				return ""
			case "seen":
				in := &w.inputs[arg("input")]
				in.maxTs = max(in.maxTs, arg("ts"))
				return ""
			case "caughtup":
				in := &w.inputs[arg("input")]
				in.caughtUpAt = max(in.caughtUpAt, arg("at"))
				return ""
			case "drain":
				nowMs := arg("now")
				var out strings.Builder
				for {
					i, ok := w.next(nowMs)
					if !ok {
						break
					}
					in := &w.inputs[i]
					q := in.queue.pop()
					part := ""
					if p, ok := rawPartitionOf(q.r); ok && in.raw != nil {
						part = fmt.Sprintf(" part=%d", p)
					}
					fmt.Fprintf(&out, "input %d ts=%d%s\n", i, q.ts, part)
				}
				for i := range w.inputs {
					if n := w.inputs[i].pending(); n > 0 {
						fmt.Fprintf(&out, "waiting: input %d has %d\n", i, n)
					}
				}
				if out.Len() == 0 {
					return "nothing\n"
				}
				return out.String()
			case "watermark":
				wm, ok := w.watermark(time.UnixMilli(arg("now")))
				if !ok {
					return "unknown\n"
				}
				return fmt.Sprintf("%d\n", wm.UnixMilli())
			case "fired":
				w.firedTo = max(w.firedTo, arg("to"))
				return ""
			case "late":
				return fmt.Sprintf("%v\n", w.late(arg("ts")))
			case "grace-wait":
				return fmt.Sprintf("%v\n", w.waitsOnGrace())
			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
				return ""
			}
		})
	})
}
