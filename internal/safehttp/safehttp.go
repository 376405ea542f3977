// Package safehttp makes the HTTP clients that carry the user's credentials
// (Pulumi Cloud tokens) behave as a credential must: a redirect to another
// origin is refused (rather than followed, Authorization header and all,
// to another port or host), and a response body is bounded, so that a
// service, or whatever answers in its place, cannot make escfs hold
// gigabytes.
package safehttp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// MaxBody is the default bound on one response body: 64 MiB, far above
// any listing, definition or stack export escfs reads.
const MaxBody = 64 << 20

// ErrTooLarge is the error of reading a response body past its bound.
var ErrTooLarge = errors.New("response body too large")

// ErrCrossOriginRedirect is the error of a redirect to another origin.
var ErrCrossOriginRedirect = errors.New("refused a redirect to another origin (it would carry the access token there)")

// Harden makes c refuse redirects to another origin and bound each
// response body to maxBody bytes (0: MaxBody). It keeps c's transport
// (http.DefaultTransport if nil) beneath.
func Harden(c *http.Client, maxBody int64) {
	if maxBody <= 0 {
		maxBody = MaxBody
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if _, done := base.(*boundedTransport); !done {
		c.Transport = &boundedTransport{base: base, max: maxBody}
	}
	c.CheckRedirect = CheckRedirect
}

// New returns a hardened client over http.DefaultTransport.
func New() *http.Client {
	c := &http.Client{}
	Harden(c, 0)
	return c
}

// CheckRedirect follows at most 10 redirects, all within the origin (scheme,
// host and port) of the first request.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if o, first := Origin(req.URL), Origin(via[0].URL); o != first {
		return fmt.Errorf("%w: from %s to %s", ErrCrossOriginRedirect, first, o)
	}
	return nil
}

// Origin is scheme://host:port of u, the port always spelled out.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// IsLoopback reports whether host (a name or an address, without port) is
// this machine: localhost, 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// boundedTransport bounds the bodies of the responses of base.
type boundedTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w: %d bytes announced, at most %d", req.Method, req.URL.Redacted(), ErrTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

// boundedBody fails a read past its bound.
type boundedBody struct {
	io.ReadCloser
	left, max int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, b.max)
		}
		return b.ReadCloser.Read(p[:0])
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// AllowHostsEnv names the hosts, beyond those the user configured as their
// Pulumi Cloud or AWS endpoints, to which escfs sends the user's
// credentials when a definition names them: comma-separated, each a host
// (any port) or host:port. escfs --allow-host sets it.
const AllowHostsEnv = "ESCFS_ALLOW_HOSTS"

// Allowed reports whether the user allowed the host of u (a URL) by
// AllowHostsEnv.
func Allowed(u *url.URL) bool {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	for _, e := range strings.Split(AllowHosts(), ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if h, p, err := net.SplitHostPort(e); err == nil {
			if strings.Trim(h, "[]") == strings.Trim(host, "[]") && p == port {
				return true
			}
		} else if strings.Trim(e, "[]") == strings.Trim(host, "[]") {
			return true
		}
	}
	return false
}

// AllowHosts returns the value of AllowHostsEnv.
func AllowHosts() string { return os.Getenv(AllowHostsEnv) }

// ErrPlainHTTP is the error of credentials that would go over plain HTTP to
// another machine.
var ErrPlainHTTP = errors.New("plain http:// would send credentials in the clear: only loopback hosts (127.0.0.1, ::1, localhost) may use it; use https://")

// CheckScheme refuses a URL that would carry credentials in the clear: an
// http:// URL whose host is not loopback.
func CheckScheme(u *url.URL) error {
	if strings.EqualFold(u.Scheme, "http") && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("%s: %w", u.Redacted(), ErrPlainHTTP)
	}
	return nil
}
