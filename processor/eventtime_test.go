package processor

import (
	"fmt"
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
// Inputs are 0 clickstream, 1 transactions, 2 profiles.
func TestEventTime(t *testing.T) {
	datadriven.Walk(t, "testdata/eventtime", func(t *testing.T, path string) {
		var w *worker
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key string) int64 {
				var v int64
				d.ScanArgs(t, key, &v)
				return v
			}
			switch d.Cmd {
			case "config":
				cfg := DefaultConfig()
				for _, a := range d.CmdArgs {
					switch a.Key {
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
				return ""
			case "queue":
				in := &w.inputs[arg("input")]
				ts := arg("ts")
				r := &kgo.Record{Offset: int64(len(in.queue))}
				in.queue = append(in.queue, queued{r: r, ts: ts, arrived: arg("arrived"), late: w.late(ts)})
				in.maxTs = max(in.maxTs, ts)
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
					q := in.queue[in.head]
					in.head++
					fmt.Fprintf(&out, "input %d ts=%d\n", i, q.ts)
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
