package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWithPprof(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("inner " + r.URL.Path))
	})
	srv := httptest.NewServer(withPprof(inner))
	defer srv.Close()
	for path, want := range map[string]int{
		"/debug/pprof/":            http.StatusOK,
		"/debug/pprof/goroutine":   http.StatusOK,
		"/debug/pprof/nosuchthing": http.StatusNotFound,
		"/metrics":                 http.StatusOK,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
