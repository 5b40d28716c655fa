package processor

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/triggerd/triggerd/schemas"
)

// SettingError is one problem with one setting, named by its path in the
// configuration as written in YAML (topics.clickstream, brokers[0]), so
// that a caller embedding Config under a key of its own can name the
// setting as its file spells it (kafka.topics.clickstream).
type SettingError struct {
	Path    string
	Problem string
}

func (e *SettingError) Error() string { return "processor: " + e.Path + ": " + e.Problem }

// settingError makes a SettingError of a message written "path: problem".
func settingError(msg string) *SettingError {
	path, problem, ok := strings.Cut(msg, ": ")
	if !ok {
		return &SettingError{Problem: msg}
	}
	return &SettingError{Path: path, Problem: problem}
}

// UsesAvro says whether any topic, the suppressions included, is encoded
// in Avro, so that a schema registry is needed.
func (c *Config) UsesAvro() bool {
	e := c.Encodings
	for _, f := range []schemas.Format{e.Clickstream, e.Transactions, e.Profiles, e.Triggers, c.SuppressionsFormat()} {
		if f == schemas.FormatAvro {
			return true
		}
	}
	return false
}

// CheckHostPort reports whether addr is host:port with a numeric port. A
// listen address may leave the host out (":9464", every interface) and
// take port 0 (any free port); an address to dial (a broker) needs both.
// A setting like "nonsense" or "localhost" is refused at start rather than
// failing later, when the process would run without the listener.
func CheckHostPort(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q is not host:port: port %q is not a number from 0 to 65535", addr, port)
	}
	if strings.ContainsAny(host, " \t\n/") {
		return fmt.Errorf("%q is not host:port: host %q is no host name or IP address", addr, host)
	}
	if !listen {
		if host == "" {
			return fmt.Errorf("%q is not host:port: the host is missing", addr)
		}
		if n == 0 {
			return fmt.Errorf("%q is not host:port: port 0", addr)
		}
	}
	return nil
}
