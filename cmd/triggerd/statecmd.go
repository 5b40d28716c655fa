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

Flags (before ID):
  --addr URL      an instance's admin API (default: admin.advertise or admin.addr of the config)
  --token TOKEN   the bearer token (default: $TRIGGERD_ADMIN_TOKEN, then admin.token of the config)
  --config FILE   the configuration file to take them from (default: $TRIGGERD_CONFIG)
`

// stateCmd calls the admin API of a running instance, which redirects to
// the instance that owns the customer.
func stateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, stateUsage)
		return errors.New("state: a subcommand is required")
	}
	sub := args[0]
	var method, suffix string
	switch sub {
	case "get":
		method, suffix = "GET", ""
	case "explain":
		method, suffix = "GET", "/explain"
	case "erase":
		method, suffix = "POST", "/erase"
	case "-h", "--help", "help":
		fmt.Fprint(stdout, stateUsage)
		return nil
	default:
		fmt.Fprint(stderr, stateUsage)
		return fmt.Errorf("state: unknown subcommand %q", sub)
	}
	fs := flag.NewFlagSet("state "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "admin API address (URL)")
	token := fs.String("token", os.Getenv("TRIGGERD_ADMIN_TOKEN"), "bearer token")
	path := fs.String("config", os.Getenv("TRIGGERD_CONFIG"), "configuration file (YAML)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, stateUsage)
		return fmt.Errorf("state %s: exactly one customer ID is required", sub)
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
