package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// runCLI runs the command line in-process and returns its exit code and
// output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelpOnEveryCommand: --help and -h on every command and subcommand
// print that command's usage to stdout and exit 0, before anything runs
// ("rules check --help" used to open a file named --help, "rules --help"
// was an unknown command, "run --help" exited 1).
func TestHelpOnEveryCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the usage printed
	}{
		{[]string{"--help"}, "triggerd run --config FILE"},
		{[]string{"-h"}, "triggerd run --config FILE"},
		{[]string{"help"}, "triggerd run --config FILE"},
		{[]string{"run", "--help"}, "triggerd run [--config FILE]"},
		{[]string{"run", "--config", "x.yaml", "-h"}, "triggerd run [--config FILE]"},
		{[]string{"demo", "--help"}, "--stage1 duration"},
		{[]string{"demo", "-h"}, "triggerd demo [flags]"},
		{[]string{"rules", "--help"}, "triggerd rules check FILE..."},
		{[]string{"rules", "-h"}, "triggerd rules test FILE SCRIPT..."},
		{[]string{"rules", "check", "--help"}, "Compiles each rules file"},
		{[]string{"rules", "check", "example", "-h"}, "Compiles each rules file"},
		{[]string{"rules", "test", "--help"}, "triggerd rules test FILE SCRIPT..."},
		{[]string{"rules", "vars", "--help"}, "triggerd rules vars"},
		{[]string{"rules", "example", "-h"}, "triggerd rules example"},
		{[]string{"state", "--help"}, "triggerd state explain ID"},
		{[]string{"state", "get", "--help"}, "--addr URL"},
		{[]string{"state", "explain", "c-1", "-h"}, "triggerd state explain [flags] ID"},
		{[]string{"state", "erase", "--help"}, "admin.allow_writes"},
		{[]string{"version", "--help"}, "triggerd version"},
		{[]string{"topics", "--help"}, "--partitions count"},
		{[]string{"help", "topics"}, "co-partitioned"},
		{[]string{"help", "rules", "check"}, "Compiles each rules file"},
		{[]string{"help", "state", "get"}, "--token TOKEN"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, tc.want) || stderr != "" {
			t.Errorf("triggerd %s: exit %d, stdout %q, stderr %q; want exit 0 and a usage with %q on stdout",
				strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
}

// A command line that cannot run exits 2 with the reason and the usage on
// stderr.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"rules"}, "rules: a subcommand is required"},
		{[]string{"rules", "nope"}, `rules: unknown subcommand "nope"`},
		{[]string{"rules", "check"}, "rules check: a rules file is required"},
		{[]string{"rules", "check", "example", "--strict"}, "rules check: flag provided but not defined: -strict"},
		{[]string{"rules", "test", "example"}, "at least one script"},
		{[]string{"rules", "vars", "extra"}, `rules vars: no arguments expected, got ["extra"]`},
		{[]string{"run", "--nope"}, "run: flag provided but not defined: -nope"},
		{[]string{"run", "config.yaml"}, "the file goes after --config"},
		{[]string{"demo", "--rate", "fast"}, `demo: invalid value "fast" for flag -rate`},
		{[]string{"state"}, "state: a subcommand is required"},
		{[]string{"state", "get"}, "exactly one customer ID is required, got 0"},
		{[]string{"state", "get", "a", "b"}, "exactly one customer ID is required, got 2"},
		{[]string{"state", "get", "a", "--addr"}, "state get: flag needs an argument: --addr"},
		{[]string{"version", "now"}, "version: no arguments expected"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "Usage:") || stdout != "" {
			t.Errorf("triggerd %s: exit %d, stdout %q, stderr %q; want exit 2 and %q with the usage on stderr",
				strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
}

// TestFlagsAfterArguments: flags go before, between or after the
// positional arguments, and "--" ends them ("state get ID --addr URL" used
// to fail: exactly one customer ID is required).
func TestFlagsAfterArguments(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`{"customer":"x"}`))
	}))
	defer srv.Close()
	t.Setenv("TRIGGERD_ADMIN_TOKEN", "")
	t.Setenv("TRIGGERD_CONFIG", "")
	for _, args := range [][]string{
		{"state", "get", "c-1", "--addr", srv.URL, "--token", "s3cret"},
		{"state", "get", "--addr", srv.URL, "c-1", "--token=s3cret"},
		{"state", "get", "--addr=" + srv.URL, "--token", "s3cret", "c-1"},
		{"state", "explain", "c-1", "-addr", srv.URL, "-token", "s3cret"},
		{"state", "get", "--addr", srv.URL, "--token", "s3cret", "--", "-c1"},
	} {
		got = nil
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 || stdout != `{"customer":"x"}` {
			t.Errorf("triggerd %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
		want := "GET /customers/c-1 Bearer s3cret"
		switch {
		case args[1] == "explain":
			want = "GET /customers/c-1/explain Bearer s3cret"
		case args[len(args)-1] == "-c1":
			want = "GET /customers/-c1 Bearer s3cret"
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("triggerd %s: the admin API got %q, want %q", strings.Join(args, " "), got, want)
		}
	}

	// A bool flag takes no value: the argument after it stays positional.
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "")
	rate := fs.Int("rate", 0, "")
	if err := parseFlags(fs, "", []string{"a", "--quiet", "b", "--rate", "5", "c"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !*quiet || *rate != 5 || strings.Join(fs.Args(), ",") != "a,b,c" {
		t.Errorf("quiet=%v rate=%d args=%q; want true, 5, [a b c]", *quiet, *rate, fs.Args())
	}

	// rules check takes its files wherever the flags are.
	code, stdout, stderr := runCLI(t, "rules", "check", "example", "../../rules/example/rules.yaml")
	if code != 0 || strings.Count(stdout, ": ok, ") != 2 {
		t.Errorf("rules check of two files: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
