package processor

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsHandler serves /metrics from g, /healthz (the loop makes progress) and
// /readyz (in the group, restored and cycling; false while restoring, and at
// once on a fault that takes the processor out of its group). A 503 says why.
func (p *Processor) OpsHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if within := 3 * p.cfg.SessionTimeout; !p.Alive(within) {
			why := "processing loop stalled: no cycle within " + within.String()
			if f := p.faults.state(); f.reason != "" {
				why = "no progress for " + within.String() + " or more: " + f.reason
			}
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready, why := p.Readiness(); !ready {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// opsReadHeaderTimeout guards the ops server against slow clients.
const opsReadHeaderTimeout = 5 * time.Second

// NewOpsServer returns an HTTP server for OpsHandler on addr.
func (p *Processor) NewOpsServer(addr string, g prometheus.Gatherer) *http.Server {
	return &http.Server{Addr: addr, Handler: p.OpsHandler(g), ReadHeaderTimeout: opsReadHeaderTimeout}
}
