package processor

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsHandler serves /metrics from g, /healthz (the loop is alive) and
// /readyz (in the group, restored and cycling; false while restoring).
func (p *Processor) OpsHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Alive(3 * p.cfg.SessionTimeout) {
			http.Error(w, "processing loop stalled", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "not ready: joining the group or restoring state", http.StatusServiceUnavailable)
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
