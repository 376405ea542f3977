package kumotest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// ClosedURL returns the URL of a loopback port nothing listens on: a call
// to it fails at once with "connection refused".
func ClosedURL(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// ProxyTo returns a reverse proxy to endpoint, for a front server that
// counts, inspects or rewrites some requests and passes the rest on.
func ProxyTo(tb testing.TB, endpoint string) http.Handler {
	tb.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// AWSError answers as an AWS JSON-protocol service does when a call fails:
// status, and a body naming the error code and its message.
func AWSError(status int, code, message string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, message)
	}
}

// Operation returns the operation an AWS JSON-protocol request calls, from
// its X-Amz-Target header ("TrentService.Decrypt" gives "Decrypt"), or "".
func Operation(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(target, '.'); i >= 0 {
		return target[i+1:]
	}
	return target
}
