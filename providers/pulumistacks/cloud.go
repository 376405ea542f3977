package pulumistacks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pulumi/esc"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/sig"

	"github.com/escfs/escfs/internal/pulumiaccount"
	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/internal/safehttp"
)

// A Pulumi Cloud backend reads stacks through the service's REST API, as
// the Pulumi CLI's httpstate backend does (pulumi/pulumi
// pkg/backend/httpstate/client/client.go):
//
//	GET  /api/stacks/ORG/PROJECT/STACK/export         -> apitype.ExportStackResponse
//	POST /api/stacks/ORG/PROJECT/STACK/batch-decrypt  apitype.BatchDecryptRequest -> apitype.BatchDecryptResponse
//
// with "Authorization: token TOKEN" of the pulumiaccount account for the
// backend URL, and "Accept: application/vnd.pulumi+8".

// ServiceProvider is the type of the Pulumi Cloud secrets provider in a
// deployment's secrets_providers: its secrets are decrypted by the service.
const ServiceProvider = "service"

// Bounds of the calls to Pulumi Cloud.
const (
	// cloudCallTimeout bounds reading one stack: export and decrypt,
	// retries included.
	cloudCallTimeout = 30 * time.Second
	// cloudAttempts is how often a request is made when the service is
	// unreachable, overloaded (5xx) or rate limiting (429).
	cloudAttempts = 4
	// cloudBackoff is the wait before the first retry; it doubles for each
	// further one, plus up to a quarter of random jitter.
	cloudBackoff = 250 * time.Millisecond
	// maxRetryAfter is the longest Retry-After escfs waits for; a longer
	// one ends the retries at once (an evaluation should not hang).
	maxRetryAfter = 5 * time.Second
	// maxErrorMessage bounds the service's message quoted in an error.
	maxErrorMessage = 200
)

// apiAccept is the Accept header the service's REST API requires.
const apiAccept = "application/vnd.pulumi+8"

// loginHint ends the errors of a rejected or insufficient access token.
const loginHint = "run `esc login` or set " + pulumiaccount.AccessTokenEnv

// cloudClient makes the requests; each is bounded by its context, and a
// redirect to another origin (which would carry the token) is refused.
var cloudClient = safehttp.New()

// cloudBackend is a Pulumi Cloud backend.
type cloudBackend struct {
	url        string                // as configured, for messages
	account    pulumiaccount.Account // its URL and token
	accountErr error                 // not logged in: reported for each stack read
}

// newCloudBackend opens the Pulumi Cloud at url with the account the
// Pulumi CLI would use there. Without a token, reading a stack fails with
// pulumiaccount.ErrNotLoggedIn, naming the stack.
func newCloudBackend(url string) (Backend, error) {
	account, err := pulumiaccount.Current(url)
	if err != nil && !errors.Is(err, pulumiaccount.ErrNotLoggedIn) {
		return nil, fmt.Errorf("backend %s: %w", url, err)
	}
	return &cloudBackend{url: url, account: account, accountErr: err}, nil
}

// ReadStack exports the stack's latest deployment and decodes its outputs.
// A stack reference without an organization is in the account's default
// organization (config.json's defaultOrg), else in the user's own.
func (b *cloudBackend) ReadStack(ctx context.Context, ref string) (esc.Value, error) {
	org, project, stack, err := splitStackRef(ref)
	if err != nil {
		return esc.Value{}, err
	}
	if b.accountErr != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %w", ref, b.accountErr)
	}
	if org == "" {
		org = b.account.DefaultOrg
	}
	if org == "" {
		org = b.account.Username
	}
	if org == "" {
		return esc.Value{}, fmt.Errorf("stack %s: no organization: write organization/project/stack, or set a default with `pulumi org set-default`", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, cloudCallTimeout)
	defer cancel()

	path := "/api/stacks/" + url.PathEscape(org) + "/" + url.PathEscape(project) + "/" + url.PathEscape(stack)
	var export apitype.ExportStackResponse
	if err := b.call(ctx, http.MethodGet, path+"/export", nil, &export); err != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %w", ref, err)
	}
	location := b.account.URL + path + "/export"
	dep, err := decodeDeployment(apitype.UntypedDeployment(export), project)
	if err != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %s: %w", ref, location, err)
	}
	outputs, err := stackOutputs(ctx, dep, func() (config.Decrypter, error) {
		if sp := dep.SecretsProviders; sp != nil && sp.Type == ServiceProvider {
			return b.batchDecrypt(ctx, path, ciphertexts(rootStack(dep).Outputs, nil))
		}
		return decrypter(dep) // a passphrase stack, or the error naming its provider
	})
	if err != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %s: %w", ref, location, err)
	}
	return outputs, nil
}

// decodeDeployment decodes an exported deployment of a stack of project;
// nil for a stack that was never updated.
func decodeDeployment(ud apitype.UntypedDeployment, project string) (*apitype.DeploymentV3, error) {
	if ud.Version == 0 && (len(ud.Deployment) == 0 || string(ud.Deployment) == "null") {
		return nil, nil
	}
	if err := checkVersion("deployment", ud.Version); err != nil {
		return nil, err
	}
	var dep apitype.DeploymentV3
	dec := json.NewDecoder(bytes.NewReader(ud.Deployment))
	dec.UseNumber() // numbers stay exact, as ESC holds them
	if err := dec.Decode(&dep); err != nil {
		return nil, fmt.Errorf("corrupt deployment: %w", jsonError(err))
	}
	if err := checkProject("deployment", &dep, project); err != nil {
		return nil, err
	}
	return &dep, nil
}

// ciphertexts appends to cts the ciphertexts of the secrets in v, a
// deserialized output value, each once.
func ciphertexts(v any, cts []string) []string {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			cts = ciphertexts(e, cts)
		}
	case map[string]any:
		if s, _ := v[sig.Key].(string); s == sig.Secret {
			if ct, ok := v["ciphertext"].(string); ok {
				for _, seen := range cts {
					if seen == ct {
						return cts
					}
				}
				cts = append(cts, ct)
			}
			return cts
		}
		for _, e := range v {
			cts = ciphertexts(e, cts)
		}
	}
	return cts
}

// batchDecrypt decrypts cts, the stack's ciphertexts, through the service
// in one request and returns a decrypter of them. As the CLI's service
// secrets manager (pulumi/pulumi pkg/secrets/service/manager.go,
// serviceCrypter.BatchDecrypt), a ciphertext in the deployment is the
// standard base64 of the service's bytes; the request carries the bytes,
// and the answer maps their base64 to the plaintext bytes. The stack is
// the one exported, not the one the secrets provider's state names: the
// same stack unless it was renamed, and then the service knows it by its
// new name.
func (b *cloudBackend) batchDecrypt(ctx context.Context, stackPath string, cts []string) (config.Decrypter, error) {
	req := apitype.BatchDecryptRequest{Ciphertexts: make([][]byte, 0, len(cts))}
	keys := make(map[string]string, len(cts)) // ciphertext -> key of the answer
	for _, ct := range cts {
		raw, err := base64.StdEncoding.DecodeString(ct)
		if err != nil {
			continue // not the service's: its output fails as corrupt
		}
		req.Ciphertexts = append(req.Ciphertexts, raw)
		keys[ct] = base64.StdEncoding.EncodeToString(raw)
	}
	var resp apitype.BatchDecryptResponse
	if err := b.call(ctx, http.MethodPost, stackPath+"/batch-decrypt", &req, &resp); err != nil {
		return nil, fmt.Errorf("decrypt through Pulumi Cloud: %w", err)
	}
	plain := make(decrypted, len(keys))
	for ct, key := range keys {
		if pt, ok := resp.Plaintexts[key]; ok {
			plain[ct] = string(pt)
		}
	}
	return plain, nil
}

// decrypted is a config.Decrypter of ciphertexts decrypted already.
type decrypted map[string]string

func (d decrypted) DecryptValue(_ context.Context, ct string) (string, error) {
	pt, ok := d[ct]
	if !ok {
		return "", errors.New("the service did not decrypt it")
	}
	return pt, nil
}

func (d decrypted) BatchDecrypt(ctx context.Context, cts []string) ([]string, error) {
	pts := make([]string, len(cts))
	for i, ct := range cts {
		pt, err := d.DecryptValue(ctx, ct)
		if err != nil {
			return nil, err
		}
		pts[i] = pt
	}
	return pts, nil
}

// retryable is a failure worth another attempt; after is the wait the
// service asked for (Retry-After), 0 if none.
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// call makes the request method path (under the account's URL) with the
// JSON of in, if not nil, and decodes the answer into out. It retries an
// unreachable service, 429 and 5xx up to cloudAttempts times with a
// doubling backoff, waiting at least what Retry-After asks, up to
// maxRetryAfter. Its errors start with the method and URL and never hold
// the token.
func (b *cloudBackend) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	where := method + " " + b.account.URL + path
	for attempt := 1; ; attempt++ {
		err := b.try(ctx, method, b.account.URL+path, body, out)
		var retry *retryable
		switch {
		case err == nil:
			return nil
		case !errors.As(err, &retry):
			return fmt.Errorf("%s: %w", where, err)
		case attempt == cloudAttempts:
			return fmt.Errorf("%s: %w (%d attempts)", where, err, attempt)
		case retry.after > maxRetryAfter:
			return fmt.Errorf("%s: %w, and asks to retry after %s, longer than escfs waits (%s)", where, err, retry.after, maxRetryAfter)
		}
		wait := cloudBackoff << (attempt - 1)
		wait += rand.N(wait/4 + 1)
		wait = max(wait, retry.after)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return fmt.Errorf("%s: %w (no time left to retry)", where, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s: %w (%v while waiting to retry)", where, err, ctx.Err())
		case <-timer.C:
		}
	}
}

// try makes one request of call.
func (b *cloudBackend) try(ctx context.Context, method, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", apiAccept)
	req.Header.Set("Authorization", "token "+b.account.Token)
	req.Header.Set("User-Agent", "escfs")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cloudClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer in time: %w", ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the message names the URL already
		}
		if errors.Is(err, safehttp.ErrCrossOriginRedirect) {
			return err // asking again would not change the answer
		}
		return &retryable{err: fmt.Errorf("Pulumi Cloud %s is unreachable: %v", b.account.URL, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckpointBytes+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("no answer in time: %w", ctx.Err())
	case err != nil:
		return &retryable{err: fmt.Errorf("reading the answer: %v", err)}
	case len(data) > maxCheckpointBytes:
		return fmt.Errorf("answer larger than %d MiB", maxCheckpointBytes>>20)
	}
	status := b.status(resp, data)
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("unexpected answer (%s): %w", status, jsonError(err))
		}
		return nil
	case code == http.StatusUnauthorized:
		return fmt.Errorf("Pulumi Cloud rejected the access token (%s): %s", status, loginHint)
	case code == http.StatusForbidden:
		return fmt.Errorf("Pulumi Cloud denies the account %s access (%s): %s", b.account, status, loginHint)
	case code == http.StatusNotFound:
		return fmt.Errorf("%w (%s)", errNotFound, status)
	case code == http.StatusTooManyRequests || code >= 500:
		return &retryable{err: fmt.Errorf("Pulumi Cloud answered %s", status), after: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return fmt.Errorf("Pulumi Cloud answered %s", status)
	}
}

// status describes an answer: its status and the service's message
// (apitype.ErrorResponse), cut short, on one line, without the token.
func (b *cloudBackend) status(resp *http.Response, data []byte) string {
	s := resp.Status
	if resp.StatusCode < 300 {
		return s
	}
	var e apitype.ErrorResponse
	if json.Unmarshal(data, &e) != nil || e.Message == "" {
		return s
	}
	msg := redact.String(e.Message)
	if b.account.Token != "" {
		msg = strings.ReplaceAll(msg, b.account.Token, redact.Mark)
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	if r := []rune(msg); len(r) > maxErrorMessage {
		msg = string(r[:maxErrorMessage]) + "..."
	}
	return s + ": " + msg
}

// retryAfter parses a Retry-After header: seconds or an HTTP date; 0 if
// absent or unparseable.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return time.Duration(min(s, 366*24*3600)) * time.Second // no overflow
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
