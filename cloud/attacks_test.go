package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/cloud"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/internal/testutil"
)

// hostileToken is the token the hostile services below are given; every
// one of them echoes it back.
const hostileToken = "pul-hostile-echo-0123456789abcdef"

// hostile starts a Pulumi Cloud stand-in answering every request with h.
func hostile(t *testing.T, h http.HandlerFunc) (*cloud.Source, *testutil.Buffer) {
	return hostileFor(t, 2*time.Second, h)
}

// hostileFor is hostile with request timeout d.
func hostileFor(t *testing.T, d time.Duration, h http.HandlerFunc) (*cloud.Source, *testutil.Buffer) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	log := &testutil.Buffer{}
	src, err := cloud.New(context.Background(), cloud.Config{
		URL: srv.URL, Token: hostileToken, Org: "acme", RequestTimeout: d,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, log
}

// TestEchoedTokenIsScrubbed: services that put the request's token in
// their 401, 500 and HTML 400 answers do not get it printed, by List,
// Scan's problems, Produce's diagnostics, nor the log.
func TestEchoedTokenIsScrubbed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		body   func(auth string) string
		ctype  string
	}{
		{"401 JSON", 401, func(a string) string { return fmt.Sprintf(`{"code":401,"message":"bad credentials %q"}`, a) }, "application/json"},
		{"500 JSON", 500, func(a string) string { return fmt.Sprintf(`{"code":500,"message":"crash while handling %s"}`, a) }, "application/json"},
		{"400 HTML", 400, func(a string) string { return "<html><body><h1>Bad Request</h1><pre>" + a + "</pre></body></html>" }, "text/html"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the client retries 5xx for seconds
			src, log := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body(r.Header.Get("Authorization")))
			})
			ctx := context.Background()
			var out []string
			_, err := src.List(ctx)
			if err == nil {
				t.Fatal("List: no error")
			}
			out = append(out, err.Error())
			tree, _ := src.Scan(ctx)
			if tree != nil {
				for _, p := range tree.Problems {
					out = append(out, p.String())
				}
			}
			name, _ := eval.ParseName("app/prod")
			tree = eval.NewTree(src.Root(), []eval.Definition{{Name: name, Path: src.Path(name)}}, nil)
			snap, err := src.Produce(ctx, tree, name, t.TempDir())
			if err != nil {
				out = append(out, err.Error())
			}
			if snap != nil {
				for _, d := range snap.Diagnostics {
					out = append(out, d.String())
				}
			}
			out = append(out, log.String())
			all := strings.Join(out, "\n")
			if strings.Contains(all, hostileToken) {
				t.Fatalf("the token was printed:\n%s", all)
			}
			if !strings.Contains(all, "[REDACTED]") {
				t.Fatalf("the echo is not in the messages (the test proves nothing):\n%s", all)
			}
		})
	}
}

// TestHostileListings: a listing larger than safehttp.MaxBody is an error
// (not gigabytes of memory), a service that trickles a byte at a time is
// cut off at the request timeout, and a redirect to another origin is
// refused with the token kept.
func TestHostileListings(t *testing.T) {
	wait := func(t *testing.T, src *cloud.Source) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := src.List(context.Background()) // no deadline of its own
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("List still waiting after 60 s")
			return nil
		}
	}
	t.Run("endless listing", func(t *testing.T) {
		// 64 MiB under the race detector on a loaded machine takes seconds:
		// the bound must be what ends it, not the request timeout.
		src, _ := hostileFor(t, 30*time.Second, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"environments":[`)
			entry := []byte(strings.Repeat(`{"organization":"acme","project":"p","name":"e"},`, 1000))
			for sent := 0; sent <= safehttp.MaxBody+len(entry); sent += len(entry) {
				if _, err := w.Write(entry); err != nil {
					return
				}
			}
		})
		if err := wait(t, src); !errors.Is(err, safehttp.ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	t.Run("a byte at a time", func(t *testing.T) {
		stop := make(chan struct{}) // closed before the server, so a failure does not wait out the trickle
		src, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for _, c := range []byte(`{"environments":[` + strings.Repeat(" ", 1000)) {
				w.Write([]byte{c})
				w.(http.Flusher).Flush()
				select {
				case <-time.After(200 * time.Millisecond):
				case <-r.Context().Done():
					return
				case <-stop:
					return
				}
			}
		})
		t.Cleanup(func() { close(stop) })
		if err := wait(t, src); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the request timeout", err)
		}
		// An open (escfs --cloud open, run) is bounded the same way.
		done := make(chan error, 1)
		go func() {
			name, _ := eval.ParseName("app/prod")
			tree := eval.NewTree(src.Root(), []eval.Definition{{Name: name, Path: src.Path(name)}}, nil)
			_, err := src.Produce(context.Background(), tree, name, t.TempDir())
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("open: err = %v, want the request timeout", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Produce still waiting after 60 s")
		}
	})
	t.Run("redirect to another port", func(t *testing.T) {
		var leaked []string
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			leaked = append(leaked, r.Header.Get("Authorization"))
		}))
		defer other.Close()
		// The ESC client retries a failed request 4 times over 7 s: a
		// timeout longer than that lets the refusal be the error.
		src, _ := hostileFor(t, 20*time.Second, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		})
		if err := wait(t, src); !errors.Is(err, safehttp.ErrCrossOriginRedirect) {
			t.Fatalf("err = %v, want the redirect refused", err)
		}
		if len(leaked) != 0 {
			t.Fatalf("the other port got %q", leaked)
		}
	})
}
