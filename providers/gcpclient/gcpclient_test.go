package gcpclient

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/escfs/escfs/providers"
)

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{403, `{"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}`, "PERMISSION_DENIED: denied"},
		{400, `{"error": "invalid_grant", "error_description": "stale"}`, "invalid_grant: stale"},
		{502, `<html>bad gateway</html>`, "HTTP 502 Bad Gateway"},
		{500, `{"error": {"code": 500}}`, "HTTP 500 Internal Server Error"},
		{400, `{"error": {"message": "` + strings.Repeat("é", 600) + `", "status": "X"}}`, "X: " + strings.Repeat("é", 256) + "..."},
	} {
		if got := ParseError(tc.status, []byte(tc.body)).Error(); got != tc.want {
			t.Errorf("ParseError(%d, %.40s) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	err := errors.New(`oauth2/google: unable to generate access token: oauth2/google: status code 400: {"error":"invalid_target","error_description":"no pool"}`)
	if got := Describe("sts token exchange", err).Error(); got != "sts token exchange: invalid_target: no pool" {
		t.Errorf("Describe = %q", got)
	}
}

func TestURL(t *testing.T) {
	if u, err := SecretManager.URL("v1/x"); err != nil || u != "https://secretmanager.googleapis.com/v1/x" {
		t.Errorf("default URL = %q, %v", u, err)
	}
	t.Setenv(SecretManager.OverrideEnv(), "http://127.0.0.1:9/")
	if u, err := SecretManager.URL("v1/x"); err != nil || u != "http://127.0.0.1:9/v1/x" {
		t.Errorf("loopback URL = %q, %v", u, err)
	}
	for _, bad := range []string{"http://secretmanager.example.com/", "ftp://x/", "not a url"} {
		t.Setenv(SecretManager.OverrideEnv(), bad)
		if _, err := SecretManager.URL("v1/x"); err == nil {
			t.Errorf("override %q accepted", bad)
		}
	}
}

// FuzzParseError checks that any answer gives a bounded, valid message.
func FuzzParseError(f *testing.F) {
	f.Add(400, []byte(`{"error": "invalid_grant", "error_description": "x"}`))
	f.Add(403, []byte(`{"error": {"message": "m", "status": "S"}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		msg := ParseError(status, body).Error()
		if len(msg) > providers.MaxMessage+len(body)+64 && len(msg) > 2*providers.MaxMessage+64 {
			t.Errorf("message of %d bytes", len(msg))
		}
		if utf8.ValidString(string(body)) && !utf8.ValidString(msg) {
			t.Errorf("invalid UTF-8 from a valid body")
		}
	})
}
