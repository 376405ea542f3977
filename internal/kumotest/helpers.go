package kumotest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/pulumi/esc"
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

// Obj builds an object value from alternating keys and values (strings or
// esc.Values), for the inputs of the AWS providers in tests.
func Obj(kv ...any) esc.Value {
	m := map[string]esc.Value{}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case string:
			m[kv[i].(string)] = esc.NewValue(v)
		case esc.Value:
			m[kv[i].(string)] = v
		default:
			panic(fmt.Sprintf("Obj: %T", v))
		}
	}
	return esc.NewValue(m)
}

// GetInputs builds the inputs of a provider that reads a get map (the AWS
// Parameter Store and Secrets Manager providers): get's entries plus the
// other inputs, as Obj takes them.
func GetInputs(get map[string]esc.Value, other ...any) map[string]esc.Value {
	in := Obj(other...).Value.(map[string]esc.Value)
	if get != nil {
		in["get"] = esc.NewValue(get)
	}
	return in
}
