package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a duration of the rules language: Go's units (10m,
// 24h, 1h30m) plus d for days of 24 hours (3d, 1d12h, -60d). Days are exact
// multiples of 24 h; calendar rules, which need local days across DST, use
// their own offset in days (see calendar.go).
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	neg := false
	rest := in
	if strings.HasPrefix(rest, "-") {
		neg, rest = true, rest[1:]
	} else if strings.HasPrefix(rest, "+") {
		rest = rest[1:]
	}
	var d time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("rules: bad duration %q: want e.g. 3d, 24h, 10m or 1d12h", s)
		}
		d = time.Duration(n) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest != "" {
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			return 0, fmt.Errorf("rules: bad duration %q: want e.g. 3d, 24h, 10m or 1d12h", s)
		}
		x, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("rules: bad duration %q: want e.g. 3d, 24h, 10m or 1d12h", s)
		}
		d += x
	} else if d == 0 && !strings.Contains(in, "d") {
		return 0, fmt.Errorf("rules: bad duration %q: want e.g. 3d, 24h, 10m or 1d12h", s)
	}
	if neg {
		d = -d
	}
	return d, nil
}

// formatDuration renders d with days where it has whole days, the inverse
// of ParseDuration for what scripts print.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	days := d / (24 * time.Hour)
	rest := d % (24 * time.Hour)
	switch {
	case days == 0:
		return sign + rest.String()
	case rest == 0:
		return sign + strconv.FormatInt(int64(days), 10) + "d"
	}
	return sign + strconv.FormatInt(int64(days), 10) + "d" + rest.String()
}
