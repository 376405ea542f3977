package safehttp

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRedirects: a redirect within the origin is followed, with the
// Authorization header; one to another port of the same host is refused,
// and the other server never sees the token.
func TestRedirects(t *testing.T) {
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("Authorization"))
	}))
	defer other.Close()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path+" "+r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/here", http.StatusFound)
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	c := New()
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "token pul-secret")
		return c.Do(req)
	}
	resp, err := get("/same")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(seen) != 2 || seen[1] != "/here token pul-secret" {
		t.Fatalf("same-origin redirect: %q", seen)
	}
	if _, err := get("/away"); !errors.Is(err, ErrCrossOriginRedirect) {
		t.Fatalf("redirect to another port: %v, want refused", err)
	}
	if len(leaked) != 0 {
		t.Fatalf("the other origin got %q", leaked)
	}
	// The control: Go's own client follows it (the same host: it keeps
	// the header).
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/away", nil)
	req.Header.Set("Authorization", "token pul-secret")
	if resp, err := (&http.Client{}).Do(req); err == nil {
		resp.Body.Close()
	}
	if len(leaked) != 1 || leaked[0] != "token pul-secret" {
		t.Fatalf("control: a plain client sent %q to the other port", leaked)
	}
}

// TestBoundedBody: a body of exactly the bound reads whole; one byte more,
// announced or not, is ErrTooLarge.
func TestBoundedBody(t *testing.T) {
	const max = 1000
	for _, tt := range []struct {
		name    string
		size    int
		chunked bool
		wantErr bool
	}{
		{"at the bound", max, false, false},
		{"at the bound, chunked", max, true, false},
		{"over, announced", max + 1, false, true},
		{"over, chunked", max + 1, true, true},
		{"far over, chunked", 50 * max, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body := strings.Repeat("x", tt.size)
				if tt.chunked {
					w.(http.Flusher).Flush()
				}
				io.WriteString(w, body)
			}))
			defer srv.Close()
			c := &http.Client{}
			Harden(c, max)
			resp, err := c.Get(srv.URL)
			var b []byte
			if err == nil {
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tt.wantErr != errors.Is(err, ErrTooLarge) || (!tt.wantErr && len(b) != tt.size) {
				t.Fatalf("%d bytes: read %d, %v", tt.size, len(b), err)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "127.5.5.5": true, "::1": true, "[::1]": true, "10.0.0.1": false, "example.com": false, "127.0.0.1.nip.io": false} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}
