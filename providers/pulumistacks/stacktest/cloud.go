package stacktest

import (
	"compress/gzip"
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// Cloud simulates the Pulumi Cloud endpoints the pulumi-stacks provider
// reads, over real HTTP on 127.0.0.1:
//
//	GET  /api/stacks/ORG/PROJECT/STACK/export         -> apitype.ExportStackResponse
//	POST /api/stacks/ORG/PROJECT/STACK/batch-decrypt  apitype.BatchDecryptRequest -> apitype.BatchDecryptResponse
//
// Every request must carry "Authorization: token TOKEN" (else 401) and
// "Accept: application/vnd.pulumi+8" (else 400, as the service documents
// the header as required); errors are apitype.ErrorResponse bodies. Stacks
// with the service secrets provider hold ciphertexts of the simulation's
// own key, bound to the stack, which only its batch-decrypt opens, as the
// service's per-stack keys. Faults (Inject) answer 401/403/404/429/5xx or
// answer slowly.
//
//	c := stacktest.NewCloud(t, "pul-test-token")
//	c.AddStack("acme", "eks-cluster", "demo", outputs, secretOutputs, "")
//	t.Setenv("PULUMI_ACCESS_TOKEN", "pul-test-token")
//	// fn::open::pulumi-stacks: {backend: c.URL, stacks: {eks: {stack: acme/eks-cluster/demo}}}
type Cloud struct {
	// URL is the API URL, http://127.0.0.1:PORT.
	URL string
	// Token is the access token the simulation accepts.
	Token string

	key cipher.AEAD // the service's key; the stack's name is the additional data

	mu       sync.Mutex
	stacks   map[string]apitype.UntypedDeployment // GUARDED_BY(mu); by ORG/PROJECT/STACK
	faults   []*Fault                             // GUARDED_BY(mu)
	requests []Request                            // GUARDED_BY(mu)
}

// Fault is an answer the simulation gives instead of the real one.
type Fault struct {
	// Op is the operation it answers, "export" or "batch-decrypt"; ""
	// answers both.
	Op string
	// Status is the HTTP status to answer, with an apitype.ErrorResponse;
	// 0 answers normally, after Delay.
	Status int
	// RetryAfter is the Retry-After header to send, if not "".
	RetryAfter string
	// Delay is how long to wait before answering, or until the client
	// gives up.
	Delay time.Duration
	// Times is how many requests it answers; 0 means all.
	Times int
}

// Request is a request the simulation received.
type Request struct {
	Method, Path string
	Op           string // "export", "batch-decrypt" or ""
	Stack        string // ORG/PROJECT/STACK
	Authorized   bool   // the Authorization header held the token
	Status       int    // the status answered
	At           time.Time
	Ciphertexts  int // of a batch-decrypt request
}

// NewCloud starts a simulation that accepts token, stopped when the test ends.
func NewCloud(t testing.TB, token string) *Cloud {
	t.Helper()
	key := make([]byte, 32)
	if _, err := cryptorand.Read(key); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cloud{Token: token, key: aead, stacks: map[string]apitype.UntypedDeployment{}}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// AddStack stores ORG/PROJECT/STACK with the latest deployment `pulumi up`
// would leave (see Write for outputs and secretOutputs). With passphrase ""
// its secrets are the service's (secrets provider "service", as for a stack
// made without --secrets-provider); else they are encrypted with the
// passphrase secrets provider, as for `pulumi stack init
// --secrets-provider passphrase`.
func (c *Cloud) AddStack(org, project, stack string, outputs, secretOutputs map[string]any, passphrase string) error {
	name := org + "/" + project + "/" + stack
	var providers *apitype.SecretsProvidersV1
	var encrypt func(string) (string, error)
	if passphrase != "" {
		var err error
		if providers, encrypt, err = passphraseProvider(passphrase); err != nil {
			return err
		}
	} else {
		// The state pulumi/pulumi pkg/secrets/service/manager.go writes.
		state, err := json.Marshal(map[string]string{"url": c.URL, "owner": org, "project": project, "stack": stack})
		if err != nil {
			return err
		}
		providers = &apitype.SecretsProvidersV1{Type: "service", State: state}
		encrypt = func(plain string) (string, error) {
			// The CLI stores the standard base64 of the service's bytes.
			return base64.StdEncoding.EncodeToString(c.seal(name, []byte(plain))), nil
		}
	}
	dep, err := deployment(project, stack, outputs, secretOutputs, providers, encrypt, false)
	if err != nil {
		return err
	}
	raw, err := marshal(dep)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stacks[name] = apitype.UntypedDeployment{Version: apitype.DeploymentSchemaVersionCurrent, Deployment: raw}
	return nil
}

// Inject adds a fault; faults answer in the order they were added.
func (c *Cloud) Inject(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, &f)
}

// Requests returns the requests received so far.
func (c *Cloud) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// Count returns how many requests of op were received.
func (c *Cloud) Count(op string) int {
	n := 0
	for _, r := range c.Requests() {
		if r.Op == op {
			n++
		}
	}
	return n
}

func (c *Cloud) seal(stack string, plain []byte) []byte {
	nonce := make([]byte, c.key.NonceSize())
	if _, err := cryptorand.Read(nonce); err != nil {
		panic(err)
	}
	return c.key.Seal(nonce, nonce, plain, []byte(stack))
}

func (c *Cloud) open(stack string, ct []byte) ([]byte, error) {
	n := c.key.NonceSize()
	if len(ct) < n {
		return nil, errors.New("short ciphertext")
	}
	return c.key.Open(nil, ct[:n], ct[n:], []byte(stack))
}

// fault returns the next fault for op, if any, counting it.
func (c *Cloud) fault(op string) *Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.faults {
		if f.Op != "" && f.Op != op {
			continue
		}
		if f.Times > 0 {
			if f.Times--; f.Times == 0 {
				c.faults = append(c.faults[:i:i], c.faults[i+1:]...)
			}
		}
		return f
	}
	return nil
}

func (c *Cloud) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, At: time.Now(),
		Authorized: r.Header.Get("Authorization") == "token "+c.Token}
	status := c.answer(w, r, &rec)
	rec.Status = status
	c.mu.Lock()
	c.requests = append(c.requests, rec)
	c.mu.Unlock()
}

// answer answers r and returns the status; rec gets what r asked.
func (c *Cloud) answer(w http.ResponseWriter, r *http.Request, rec *Request) int {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/stacks/"), "/")
	if !strings.HasPrefix(r.URL.Path, "/api/stacks/") || len(parts) != 4 {
		return fail(w, http.StatusNotFound, "Not Found: no such route")
	}
	rec.Stack, rec.Op = strings.Join(parts[:3], "/"), parts[3]
	want := map[string]string{"export": http.MethodGet, "batch-decrypt": http.MethodPost}[rec.Op]
	if want == "" {
		return fail(w, http.StatusNotFound, "Not Found: no such route")
	}
	if r.Method != want {
		return fail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
	if f := c.fault(rec.Op); f != nil {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return 0 // the client gave up
			}
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		if f.Status != 0 {
			return fail(w, f.Status, http.StatusText(f.Status)+": injected")
		}
	}
	if !rec.Authorized {
		return fail(w, http.StatusUnauthorized, "Unauthorized: No credentials provided or are invalid.")
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/vnd.pulumi+8") {
		return fail(w, http.StatusBadRequest, "Bad Request: Accept: application/vnd.pulumi+8 is required")
	}
	c.mu.Lock()
	dep, ok := c.stacks[rec.Stack]
	c.mu.Unlock()
	if !ok {
		return fail(w, http.StatusNotFound, "Not Found: Stack '"+parts[2]+"' not found")
	}
	if rec.Op == "export" {
		return reply(w, apitype.ExportStackResponse(dep))
	}

	// The CLI gzips this request's body (httpCallOptions{GzipCompress: true}).
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return fail(w, http.StatusBadRequest, "Bad Request: gzip")
		}
		body = zr
	}
	var req apitype.BatchDecryptRequest
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		return fail(w, http.StatusBadRequest, "Bad Request: "+err.Error())
	}
	rec.Ciphertexts = len(req.Ciphertexts)
	resp := apitype.BatchDecryptResponse{Plaintexts: map[string][]byte{}}
	for _, ct := range req.Ciphertexts {
		plain, err := c.open(rec.Stack, ct)
		if err != nil {
			return fail(w, http.StatusBadRequest, "Bad Request: invalid ciphertext")
		}
		resp.Plaintexts[base64.StdEncoding.EncodeToString(ct)] = plain
	}
	return reply(w, resp)
}

func reply(w http.ResponseWriter, v any) int {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
	return http.StatusOK
}

func fail(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apitype.ErrorResponse{Code: status, Message: msg})
	return status
}
