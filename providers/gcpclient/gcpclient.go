// Package gcpclient holds what the Google Cloud providers (gcp-login,
// gcp-secrets) share: the service endpoints, the HTTP client and the
// translation of Google's error answers into messages that name the
// service's code and message and never a token.
//
// Endpoints are Google's unless the user overrides them the way gcloud
// does, with CLOUDSDK_API_ENDPOINT_OVERRIDES_STS,
// CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS and
// CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER (a base URL such as
// https://secretmanager.googleapis.com/). A definition cannot name an
// endpoint: the tokens these providers send go only where the user's
// environment says. Plain http:// is refused but for loopback hosts.
package gcpclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/providers"
)

// A Service is a Google API escfs calls.
type Service struct {
	// Name is the API's name in gcloud's endpoint overrides (sts).
	Name string
	// Default is the API's base URL.
	Default string
}

// The services the Google providers call.
var (
	STS            = Service{Name: "sts", Default: "https://sts.googleapis.com/"}
	IAMCredentials = Service{Name: "iamcredentials", Default: "https://iamcredentials.googleapis.com/"}
	SecretManager  = Service{Name: "secretmanager", Default: "https://secretmanager.googleapis.com/"}
)

// OverrideEnv is the variable that overrides s's endpoint.
func (s Service) OverrideEnv() string {
	return "CLOUDSDK_API_ENDPOINT_OVERRIDES_" + strings.ToUpper(s.Name)
}

// Overridden reports whether the user overrides s's endpoint.
func (s Service) Overridden() bool { return strings.TrimSpace(os.Getenv(s.OverrideEnv())) != "" }

// URL returns the URL of path (such as "v1/token") on s's endpoint,
// failing if the override is not an absolute URL or would send tokens in
// the clear.
func (s Service) URL(path string) (string, error) {
	base := s.Default
	if o := strings.TrimSpace(os.Getenv(s.OverrideEnv())); o != "" {
		base = o
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%s=%q is not an http(s) URL", s.OverrideEnv(), base)
	}
	if err := safehttp.CheckScheme(u); err != nil {
		return "", fmt.Errorf("%s: %w", s.OverrideEnv(), err)
	}
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/"), nil
}

// Client is the HTTP client of the Google providers: redirects stay on
// their origin and bodies are bounded.
var Client = newClient()

func newClient() *http.Client {
	c := &http.Client{Timeout: providers.CallTimeout}
	safehttp.Harden(c, 0)
	return c
}

// statusRE finds the status and body of an error of golang.org/x/oauth2's
// Google packages ("oauth2/google: status code 403: {...}").
var statusRE = regexp.MustCompile(`(?s)status code (\d{3}): (.*)$`)

// Describe turns an error of a call to Google into "OP: CODE: message",
// CODE being the service's (PERMISSION_DENIED, invalid_grant), or the
// HTTP status if the answer was not one of Google's error documents.
// It never quotes a request.
func Describe(op string, err error) error {
	if err == nil {
		return nil
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %s", op, apiErr.Error())
	}
	if m := statusRE.FindStringSubmatch(err.Error()); m != nil {
		var status int
		fmt.Sscan(m[1], &status)
		return fmt.Errorf("%s: %s", op, ParseError(status, []byte(m[2])).Error())
	}
	if terr := providers.DescribeTransport(op, err); terr != nil {
		return terr
	}
	return fmt.Errorf("%s: %w", op, err)
}

// APIError is an error answer of a Google API.
type APIError struct {
	HTTPStatus int
	Code       string // PERMISSION_DENIED, invalid_grant, or the HTTP status text
	Message    string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// ParseError reads an error answer: Google's API error document
// ({"error": {"code", "message", "status"}}), OAuth's ({"error",
// "error_description"}), or anything else, named by its HTTP status.
func ParseError(status int, body []byte) *APIError {
	e := &APIError{HTTPStatus: status, Code: fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))}
	var doc struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Error) == 0 {
		return e
	}
	var api struct {
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	var code string
	switch {
	case json.Unmarshal(doc.Error, &code) == nil && code != "":
		e.Code, e.Message = code, doc.Description
	case json.Unmarshal(doc.Error, &api) == nil:
		if api.Status != "" {
			e.Code = api.Status
		}
		e.Message = api.Message
	}
	if len(e.Code) > 64 { // a code is a word, not a message
		e.Code = strings.ToValidUTF8(e.Code[:64], "") + "..."
	}
	e.Message = providers.Bound(e.Message)
	return e
}
