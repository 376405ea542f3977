package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// AWSFront is an HTTP proxy in front of the kumo emulator that plays the
// parts of AWS the emulator leaves out, so tests can tell working
// credentials from others:
//
//   - It remembers the temporary credentials STS hands out and refuses any
//     other signed call unless it is signed by one of them, with the
//     matching session token, before its expiration (ExpiredTokenException,
//     UnrecognizedClientException), or by the administrator key that seeds
//     the emulator.
//   - Roles in Deny are refused (AccessDenied), as IAM refuses a role whose
//     trust policy does not admit the caller.
//   - A web identity token that is not shaped like a JWT is refused
//     (InvalidIdentityToken), as STS refuses one it cannot parse.
//   - With a Lifetime, STS credentials expire that long after they are
//     issued, below STS's own minimum of 15 minutes, so a test sees them
//     expire and be renewed.
//
// Errors are in the AWS wire formats (query XML for STS, JSON for the rest),
// so the SDK decodes their codes and messages as from AWS.
type AWSFront struct {
	URL string

	admin string // access key ID that may always call

	mu       sync.Mutex
	lifetime time.Duration          // GUARDED_BY(mu)
	deny     map[string]bool        // GUARDED_BY(mu); role ARNs
	issued   map[string]issuedCreds // GUARDED_BY(mu); by access key ID
	calls    []FrontCall            // GUARDED_BY(mu)
}

// issuedCreds are the temporary credentials STS handed out under one key.
type issuedCreds struct {
	sessionToken string
	expires      time.Time
}

// FrontCall is one request that reached the front.
type FrontCall struct {
	Action      string // STS Action, or the X-Amz-Target operation ("secretsmanager.GetSecretValue")
	AccessKeyID string // signer, "" if unsigned
	RoleArn     string // for AssumeRole*
	Token       string // WebIdentityToken of AssumeRoleWithWebIdentity
	Refused     string // the error code the front answered with, "" if passed on
}

// StartAWSFront starts a front for the kumo at endpoint; admin is the access
// key ID allowed to call anything (the one tests seed kumo with).
func StartAWSFront(tb testing.TB, endpoint, admin string) *AWSFront {
	tb.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	f := &AWSFront{admin: admin, deny: map[string]bool{}, issued: map[string]issuedCreds{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = f.rewriteSTS
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if code, status, msg := f.admit(r, body); code != "" {
			writeAWSError(w, r, status, code, msg)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// SetLifetime makes STS credentials issued from now on expire d after they
// are issued; 0 keeps the expiration the caller asked for.
func (f *AWSFront) SetLifetime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lifetime = d
}

// Deny makes STS refuse to assume roleArn.
func (f *AWSFront) Deny(roleArn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deny[roleArn] = true
}

// Allow undoes Deny.
func (f *AWSFront) Allow(roleArn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.deny, roleArn)
}

// Calls returns the calls so far whose Action is action ("" for all).
func (f *AWSFront) Calls(action string) []FrontCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FrontCall
	for _, c := range f.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Issued reports whether STS issued accessKeyID and when it expires.
func (f *AWSFront) Issued(accessKeyID string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.issued[accessKeyID]
	return c.expires, ok
}

var credentialRE = regexp.MustCompile(`Credential=([^/,\s]+)/`)

// admit decides whether r may reach the emulator; if not it returns the AWS
// error code, HTTP status and message to answer with.
func (f *AWSFront) admit(r *http.Request, body []byte) (code string, status int, msg string) {
	c := FrontCall{Action: r.Header.Get("X-Amz-Target")}
	if m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		c.AccessKeyID = m[1]
	}
	if c.Action == "" {
		form, _ := url.ParseQuery(string(body))
		c.Action, c.RoleArn, c.Token = form.Get("Action"), form.Get("RoleArn"), form.Get("WebIdentityToken")
	}
	defer func() {
		c.Refused = code
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
	}()

	f.mu.Lock()
	denied := f.deny[c.RoleArn]
	issued, known := f.issued[c.AccessKeyID]
	f.mu.Unlock()
	switch {
	case c.Action == "AssumeRoleWithWebIdentity" && !jwtShaped(c.Token):
		return "InvalidIdentityToken", http.StatusBadRequest, "The web identity token that was passed could not be parsed as a JWT"
	case (c.Action == "AssumeRoleWithWebIdentity" || c.Action == "AssumeRole") && denied:
		return "AccessDenied", http.StatusForbidden, "Not authorized to perform sts:" + c.Action + " on " + c.RoleArn
	case c.AccessKeyID == "" || c.AccessKeyID == f.admin:
		return "", 0, ""
	case !known || issued.sessionToken != r.Header.Get("X-Amz-Security-Token"):
		return "UnrecognizedClientException", http.StatusBadRequest, "The security token included in the request is invalid."
	case !time.Now().Before(issued.expires):
		return "ExpiredTokenException", http.StatusBadRequest, "The security token included in the request is expired"
	}
	return "", 0, ""
}

// jwtShaped reports whether token is three base64url segments whose first
// decodes to a JSON object, as a JWT's header does.
func jwtShaped(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	var v map[string]any
	return err == nil && json.Unmarshal(header, &v) == nil
}

var (
	accessKeyRE    = regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`)
	sessionTokenRE = regexp.MustCompile(`<SessionToken>([^<]+)</SessionToken>`)
	expirationRE   = regexp.MustCompile(`<Expiration>([^<]+)</Expiration>`)
)

// rewriteSTS records the credentials in an STS answer and, with a lifetime
// set, moves their expiration closer.
func (f *AWSFront) rewriteSTS(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "xml") {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	key, token, exp := accessKeyRE.FindSubmatch(body), sessionTokenRE.FindSubmatch(body), expirationRE.FindSubmatch(body)
	if key != nil && token != nil && exp != nil {
		expires, err := time.Parse(time.RFC3339, string(exp[1]))
		if err != nil {
			return fmt.Errorf("STS expiration %q: %w", exp[1], err)
		}
		f.mu.Lock()
		if f.lifetime > 0 {
			expires = time.Now().Add(f.lifetime).Truncate(time.Second)
			body = expirationRE.ReplaceAll(body, []byte("<Expiration>"+expires.UTC().Format(time.RFC3339)+"</Expiration>"))
		}
		f.issued[string(key[1])] = issuedCreds{sessionToken: string(token[1]), expires: expires}
		f.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
	return nil
}

// writeAWSError answers in the error format of the request's protocol: JSON
// for X-Amz-Target (awsJson) calls, query XML otherwise.
func writeAWSError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", code)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	var escaped bytes.Buffer
	xml.EscapeText(&escaped, []byte(msg))
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>escfs-e2e</RequestId></ErrorResponse>`, code, escaped.Bytes())
}
