package main

import (
	"net/http"
	"net/http/pprof"
)

// withPprof serves Go's profiler under /debug/pprof/ beside h. (The
// import also registers the handlers on http.DefaultServeMux, which no
// triggerd server uses: they are reachable only when ops.pprof is on.)
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
