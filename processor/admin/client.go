package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls an instance's admin API, following the owner redirects
// itself so that the token goes to the owner too (Go's HTTP client drops
// the Authorization header on a redirect to another host).
type Client struct {
	Base  string // e.g. http://triggerd-0.triggerd:9465
	Token string
	HTTP  *http.Client // nil: a client with a 30 s timeout
}

// ErrNotFound is returned (with the body) when the owner has no state for
// the customer.
var ErrNotFound = errors.New("admin: the owner has no state for this customer")

// maxRedirects bounds the owner hops: one is normal; more means the
// partition moved while the request was on its way.
const maxRedirects = 3

// Do sends method to path (e.g. /customers/c1) and returns the final
// status and body. An error answer (4xx, 5xx) is an error carrying the
// API's message.
func (c *Client) Do(ctx context.Context, method, path string) (int, []byte, error) {
	hc := http.Client{Timeout: 30 * time.Second}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	target := strings.TrimSuffix(c.Base, "/") + path
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, target, nil)
		if err != nil {
			return 0, nil, fmt.Errorf("admin: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("admin: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, nil, fmt.Errorf("admin: reading the answer: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusTemporaryRedirect:
			if hop >= maxRedirects {
				return resp.StatusCode, body, fmt.Errorf("admin: more than %d owner redirects (the partition is moving?); retry", maxRedirects)
			}
			loc, err := resp.Location()
			if err != nil {
				return resp.StatusCode, body, fmt.Errorf("admin: redirect without a location: %w", err)
			}
			target = loc.String()
			continue
		case resp.StatusCode == http.StatusNotFound && json.Valid(body) && !strings.Contains(string(body), `"error"`):
			// A customer view with found=false: the owner has nothing.
			return resp.StatusCode, body, ErrNotFound
		case resp.StatusCode >= 400:
			var ae apiError
			if json.Unmarshal(body, &ae) == nil && ae.Error != "" {
				return resp.StatusCode, body, fmt.Errorf("%s (HTTP %d)", ae.Error, resp.StatusCode)
			}
			return resp.StatusCode, body, fmt.Errorf("admin: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return resp.StatusCode, body, nil
	}
}

// CustomerPath is the API path of a customer, with the ID escaped.
func CustomerPath(id string, suffix string) (string, error) {
	if id == "" {
		return "", errors.New("admin: empty customer ID")
	}
	return "/customers/" + url.PathEscape(id) + suffix, nil
}
