package kumotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Call is one AWS request a Recorder saw.
type Call struct {
	Target        string         // X-Amz-Target of a JSON-protocol call, e.g. AmazonSSM.GetParameter
	Body          map[string]any // the JSON request of a JSON-protocol call
	Action        string         // the Action of a query-protocol call (STS), e.g. AssumeRole
	Form          url.Values     // the form of a query-protocol call
	AccessKeyID   string         // from the SigV4 Authorization header
	Region        string         // from the SigV4 credential scope
	SecurityToken string         // X-Amz-Security-Token
	Endpoint      string         // the host the request was sent to
}

// Recorder is an HTTP server on 127.0.0.1 that records the AWS requests
// it sees (JSON or query protocol) and hands them to next: the one front
// the AWS tests put before kumo or a fake.
type Recorder struct {
	URL string

	mu    sync.Mutex
	calls []Call // GUARDED_BY(mu)
}

// NewRecorder starts a Recorder in front of next, closed when the test ends.
func NewRecorder(tb testing.TB, next http.Handler) *Recorder {
	tb.Helper()
	r := &Recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		c := Call{Target: req.Header.Get("X-Amz-Target"), Endpoint: req.Host, SecurityToken: req.Header.Get("X-Amz-Security-Token")}
		if c.Target != "" {
			json.Unmarshal(b, &c.Body)
		} else if form, err := url.ParseQuery(string(b)); err == nil {
			c.Form, c.Action = form, form.Get("Action")
		}
		if _, cred, ok := strings.Cut(req.Header.Get("Authorization"), "Credential="); ok {
			// AKID/DATE/REGION/SERVICE/aws4_request, ...
			cred, _, _ = strings.Cut(cred, ",")
			parts := strings.Split(cred, "/")
			c.AccessKeyID = parts[0]
			if len(parts) == 5 {
				c.Region = parts[2]
			}
		}
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	}))
	tb.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Take returns the calls recorded so far and forgets them.
func (r *Recorder) Take() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}
