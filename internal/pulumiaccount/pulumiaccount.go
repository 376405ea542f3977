// Package pulumiaccount finds the Pulumi Cloud account escfs talks to, the
// way the Pulumi CLI finds it: the API URL and access token from the
// environment (PULUMI_BACKEND_URL, PULUMI_API, PULUMI_ACCESS_TOKEN) and from
// the files `pulumi login` and `esc login` keep in PULUMI_HOME (default
// ~/.pulumi): credentials.json and config.json. It is the one reader of
// those files in escfs; it never writes them.
//
// The formats are the SDK's (github.com/pulumi/pulumi/sdk/v3/go/common/
// workspace, creds.go): credentials.json is
//
//	{"current": URL, "accessTokens": {URL: TOKEN},
//	 "accounts": {URL: {"accessToken": TOKEN, "username": U, "organizations": [...], ...}}}
//
// and config.json is {"backends": {URL: {"defaultOrg": ORG}}}.
package pulumiaccount

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/internal/safehttp"
)

// The variables the Pulumi CLI reads.
const (
	// BackendURLEnv selects the backend (any kind: https://, file://, s3://).
	BackendURLEnv = "PULUMI_BACKEND_URL"
	// APIEnv selects the Pulumi Cloud API URL when nothing else does.
	APIEnv = "PULUMI_API"
	// AccessTokenEnv is an access token that overrides the stored ones.
	AccessTokenEnv = "PULUMI_ACCESS_TOKEN"
	// HomeEnv is the directory of the CLI's files (default ~/.pulumi).
	HomeEnv = "PULUMI_HOME"
	// CredentialsPathEnv, if set, is the directory of credentials.json
	// and config.json instead of HomeEnv's.
	CredentialsPathEnv = "PULUMI_CREDENTIALS_PATH"
)

// ErrNotAllowed is the error for a Pulumi Cloud URL that only a definition
// names: the user's token is not sent there.
var ErrNotAllowed = errors.New("refused to send your Pulumi access token to a URL you did not configure")

// sameOrigin reports whether URLs a and b have the same scheme, host and
// port.
func sameOrigin(a, b string) bool {
	ua, err1 := neturl.Parse(a)
	ub, err2 := neturl.Parse(b)
	return err1 == nil && err2 == nil && safehttp.Origin(ua) == safehttp.Origin(ub)
}

// CloudURL is the Pulumi Cloud API the CLI uses when nothing else is set.
const CloudURL = "https://api.pulumi.com"

// ErrNotLoggedIn is the error of Current when there is no access token for
// the account's URL.
var ErrNotLoggedIn = errors.New("not logged in to Pulumi Cloud: run `esc login` (or `pulumi login`) or set " + AccessTokenEnv)

// Account is the Pulumi Cloud account escfs talks to. Its String and Format
// never show the token, and it marshals to JSON without it.
type Account struct {
	// URL is the API URL, e.g. https://api.pulumi.com, without a trailing
	// slash.
	URL string
	// Token is the access token, sent as "Authorization: token TOKEN".
	Token string `json:"-"`
	// Username is the account's user name as stored by the last login ("" if
	// unknown, e.g. with a token from PULUMI_ACCESS_TOKEN only).
	Username string
	// DefaultOrg is the organization config.json names for URL
	// (backends[URL].defaultOrg), "" if none.
	DefaultOrg string
}

// String describes the account without its token: "user@URL", plus
// " (org ORG)" with a default organization.
func (a Account) String() string {
	s := a.URL
	if a.Username != "" {
		s = a.Username + "@" + s
	}
	if a.DefaultOrg != "" {
		s += " (org " + a.DefaultOrg + ")"
	}
	return s
}

// Format prints String for every verb (%v, %+v, %#v, %s, %q, ...), so that
// no formatting of an Account, however verbose, shows the token.
func (a Account) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", a.String())
		return
	}
	fmt.Fprint(f, a.String())
}

// Current returns the account for backendURL; "" means the default, the API
// URL the Pulumi CLI would use: PULUMI_BACKEND_URL if it is an http(s) URL,
// else the current login of credentials.json if it is one, else PULUMI_API,
// else CloudURL. A given URL is used as is, less a trailing slash. The token
// is PULUMI_ACCESS_TOKEN, else the one credentials.json holds for the URL
// (accounts[URL].accessToken, else accessTokens[URL]). Without a token the
// error wraps ErrNotLoggedIn and the Account still carries the URL.
func Current(backendURL string) (Account, error) {
	creds, err := readCredentials()
	if err != nil {
		return Account{}, err
	}
	configured := defaultCloudURL(creds.Current)
	url := strings.TrimSuffix(backendURL, "/")
	if url == "" {
		url = configured
	}
	if !IsCloudURL(url) {
		return Account{}, fmt.Errorf("%s is not a Pulumi Cloud URL (want https:// or http://)", url)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		return Account{}, fmt.Errorf("Pulumi Cloud URL %q: %w", url, err)
	}
	if err := safehttp.CheckScheme(u); err != nil {
		return Account{}, err
	}
	a := Account{URL: url}
	stored, ok := creds.Accounts[url]
	storedToken := stored.AccessToken
	if !ok || storedToken == "" {
		storedToken = creds.AccessTokens[url]
	}
	// PULUMI_ACCESS_TOKEN is for the Pulumi Cloud the user configured (or
	// a host they allowed), never for a URL only a definition names: a
	// stored token goes only to the URL it was stored for.
	a.Token = storedToken
	if env := os.Getenv(AccessTokenEnv); env != "" {
		switch {
		case sameOrigin(url, configured) || safehttp.Allowed(u):
			a.Token = env
		case storedToken == "":
			return Account{URL: url}, fmt.Errorf("%s: %w: %s is for %s, the Pulumi Cloud you configured; allow this host with --allow-host %s (or %s) if it is yours",
				url, ErrNotAllowed, AccessTokenEnv, configured, u.Host, safehttp.AllowHostsEnv)
		}
	}
	redact.Add(a.Token)
	// The stored user name belongs to the stored token only.
	if a.Token == storedToken {
		a.Username = stored.Username
	}
	cfg, err := readConfig()
	if err != nil {
		return Account{}, err
	}
	a.DefaultOrg = cfg.Backends[url].DefaultOrg
	if a.Token == "" {
		return a, fmt.Errorf("%s: %w", url, ErrNotLoggedIn)
	}
	return a, nil
}

// DefaultBackend returns the backend the Pulumi CLI uses outside a project,
// of any kind: PULUMI_BACKEND_URL, else the current login of
// credentials.json (a Pulumi Cloud URL, or a self-managed file:// or s3://
// one), else PULUMI_API, else CloudURL.
func DefaultBackend() (string, error) {
	if u := os.Getenv(BackendURLEnv); u != "" {
		return u, nil
	}
	creds, err := readCredentials()
	if err != nil {
		return "", err
	}
	if creds.Current != "" {
		return creds.Current, nil
	}
	return cloudFallback(), nil
}

// IsCloudURL reports whether url is a Pulumi Cloud (http or https) URL.
func IsCloudURL(url string) bool {
	scheme, _, ok := strings.Cut(url, "://")
	scheme = strings.ToLower(scheme)
	return ok && (scheme == "https" || scheme == "http")
}

// defaultCloudURL picks the API URL when none is given; current is the
// current login of credentials.json. Self-managed backends there or in
// PULUMI_BACKEND_URL are skipped, as the CLI's httpstate.ValueOrDefaultURL
// skips them.
func defaultCloudURL(current string) string {
	if u := os.Getenv(BackendURLEnv); IsCloudURL(u) {
		return strings.TrimSuffix(u, "/")
	}
	if IsCloudURL(current) {
		return strings.TrimSuffix(current, "/")
	}
	return cloudFallback()
}

// cloudFallback is PULUMI_API, else CloudURL.
func cloudFallback() string {
	if u := os.Getenv(APIEnv); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	return CloudURL
}

// credentials is the part of credentials.json escfs reads (workspace.Credentials).
type credentials struct {
	Current      string                   `json:"current"`
	AccessTokens map[string]string        `json:"accessTokens"`
	Accounts     map[string]storedAccount `json:"accounts"`
}

// storedAccount is the part of a workspace.Account escfs reads.
type storedAccount struct {
	AccessToken string `json:"accessToken"`
	Username    string `json:"username"`
}

// config is the part of config.json escfs reads (workspace.PulumiConfig).
type config struct {
	Backends map[string]struct {
		DefaultOrg string `json:"defaultOrg"`
	} `json:"backends"`
}

// readCredentials reads credentials.json; a missing or empty file is no
// credentials, as for the CLI.
func readCredentials() (credentials, error) {
	var c credentials
	err := readJSON("credentials.json", &c)
	return c, err
}

// readConfig reads config.json; a missing or empty file is no config.
func readConfig() (config, error) {
	var c config
	err := readJSON("config.json", &c)
	return c, err
}

// readJSON decodes the file name of the CLI's credentials directory into v,
// leaving v alone if the file is missing or empty. Errors name the file and
// never quote it: credentials.json holds tokens.
func readJSON(name string, v any) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	file := filepath.Join(dir, name)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("read Pulumi %s: %w", file, err)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read Pulumi %s: not valid JSON", file)
	}
	return nil
}

// Dir returns the directory of credentials.json and config.json:
// PULUMI_CREDENTIALS_PATH, else PULUMI_HOME, else ~/.pulumi.
func Dir() (string, error) {
	if dir := os.Getenv(CredentialsPathEnv); dir != "" {
		return dir, nil
	}
	if dir := os.Getenv(HomeEnv); dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the Pulumi credentials: %w", err)
	}
	return filepath.Join(home, ".pulumi"), nil
}
