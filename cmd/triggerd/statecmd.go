package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/triggerd/triggerd/processor/admin"
)

const stateUsage = `Usage:
  triggerd state get ID       the customer's state, timers, campaigns, contact history
  triggerd state explain ID   the last decisions about the customer (fired, suppressed, deferred)
  triggerd state erase ID     erase the customer (GDPR): needs admin.allow_writes on the server

Each calls a running instance's admin API, which redirects to the instance
that owns the customer. "triggerd state get --help" lists the flags; they go
before or after ID, and "--" ends them (an ID starting with "-").
`

// stateSubUsage is the usage of "triggerd state SUB".
func stateSubUsage(sub, what string) string {
	return fmt.Sprintf(`Usage:
  triggerd state %s [flags] ID

%s.

Any instance's admin API answers: it redirects to the instance that owns the
customer. An ID that starts with "-" goes after "--".
`, sub, what)
}

// stateCmd calls the admin API of a running instance, which redirects to
// the instance that owns the customer.
func stateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErrorf(nil, stateUsage, "state: a subcommand is required")
	}
	sub := args[0]
	var method, suffix, what string
	switch sub {
	case "get":
		method, suffix, what = "GET", "", "Prints the customer's state, timers, campaigns and contact history"
	case "explain":
		method, suffix, what = "GET", "/explain", "Prints the last decisions about the customer (fired, suppressed, deferred)"
	case "erase":
		method, suffix, what = "POST", "/erase", "Erases the customer (GDPR; the server needs admin.allow_writes)"
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, stateUsage)
		return nil
	default:
		return usageErrorf(nil, stateUsage, "state: unknown subcommand %q", sub)
	}
	usage := stateSubUsage(sub, what)
	fs := flag.NewFlagSet("state "+sub, flag.ContinueOnError)
	addr := fs.String("addr", "", "an instance's admin API `URL` (default: admin.advertise or admin.addr of the config)")
	token := fs.String("token", "", "the bearer `TOKEN` (default: $TRIGGERD_ADMIN_TOKEN, then admin.token of the config)")
	path := fs.String("config", "", "the configuration `FILE` to take them from (default: $TRIGGERD_CONFIG)")
	if err := parseFlags(fs, usage, args[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf(fs, usage, "state %s: exactly one customer ID is required, got %d arguments", sub, fs.NArg())
	}
	if *token == "" {
		*token = os.Getenv("TRIGGERD_ADMIN_TOKEN")
	}
	if *path == "" {
		*path = os.Getenv("TRIGGERD_CONFIG")
	}
	if *addr == "" || *token == "" {
		// Only the admin section is needed: the rest of a config
		// written for another host may not validate here.
		cfg, err := loadAdminConfig(*path, os.Environ())
		if err != nil {
			return err
		}
		if *addr == "" {
			*addr = cfg.advertised()
		}
		if *token == "" {
			*token = cfg.Token
		}
	}
	if *addr == "" {
		return errors.New("state: no admin API address: give --addr or set admin.addr in the config")
	}
	if !strings.Contains(*addr, "://") {
		*addr = "http://" + *addr
	}
	p, err := admin.CustomerPath(fs.Arg(0), suffix)
	if err != nil {
		return err
	}
	c := admin.Client{Base: *addr, Token: *token}
	_, body, err := c.Do(ctx, method, p)
	if errors.Is(err, admin.ErrNotFound) {
		_, _ = stdout.Write(body)
		return err
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(body)
	return err
}

// advertised is the address others reach this instance's admin API at:
// Advertise, else Addr with the host name for an unspecified host.
func (a AdminConfig) advertised() string {
	if a.Advertise != "" {
		return a.Advertise
	}
	if a.Addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(a.Addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host, _ = os.Hostname()
	}
	return "http://" + net.JoinHostPort(host, port)
}
