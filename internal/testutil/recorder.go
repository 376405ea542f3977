package testutil

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Recorded is what one request to a Recorder carried.
type Recorded struct {
	Method, Path string
	// Authorization and SecurityToken are the request's Authorization
	// and X-Amz-Security-Token headers.
	Authorization, SecurityToken string
}

// Recorder is an HTTP server on 127.0.0.1, in the tests' attacker's hands
// or standing in for a service, that records the credentials each request
// carries before answering it.
type Recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []Recorded
}

// NewRecorder starts a Recorder answering with answer (nil: 404), closed
// when the test ends.
func NewRecorder(tb testing.TB, answer http.HandlerFunc) *Recorder {
	r := &Recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, Recorded{Method: req.Method, Path: req.URL.Path,
			Authorization: req.Header.Get("Authorization"), SecurityToken: req.Header.Get("X-Amz-Security-Token")})
		r.mu.Unlock()
		if answer == nil {
			http.Error(w, "{}", http.StatusNotFound)
			return
		}
		answer(w, req)
	}))
	tb.Cleanup(r.Close)
	return r
}

// Requests returns what the recorder received so far.
func (r *Recorder) Requests() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Recorded(nil), r.reqs...)
}

// Carrying counts the requests whose credentials hold secret; with secret
// "", those that carried any credential.
func (r *Recorder) Carrying(secret string) int {
	n := 0
	for _, q := range r.Requests() {
		creds := q.Authorization + " " + q.SecurityToken
		if secret == "" && strings.TrimSpace(creds) != "" || secret != "" && strings.Contains(creds, secret) {
			n++
		}
	}
	return n
}
