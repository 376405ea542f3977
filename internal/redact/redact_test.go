package redact

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	Add("pul-0123456789abcdef", "short", "pul-0123456789abcdef-longer")
	Add("pul-0123456789abcdef") // twice: once in the list
	for _, tt := range []struct{ in, want string }{
		{"no credential here", "no credential here"},
		{`{"message":"bad token pul-0123456789abcdef"}`, `{"message":"bad token [REDACTED]"}`},
		{"pul-0123456789abcdef-longer!", "[REDACTED]!"},
		{"a short word stays", "a short word stays"},
		{"twice pul-0123456789abcdef pul-0123456789abcdef", "twice [REDACTED] [REDACTED]"},
	} {
		if got := String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	Add("aws-secret-key-0123456789")
	base := fmt.Errorf("GET /x: 401 token aws-secret-key-0123456789 refused: %w", fs.ErrPermission)
	err := Error(base)
	if strings.Contains(err.Error(), "aws-secret-key") || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Error = %v (Is ErrPermission: %v)", err, errors.Is(err, fs.ErrPermission))
	}
	if plain := errors.New("nothing"); Error(plain) != plain {
		t.Error("a clean error was wrapped")
	}
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}

func TestWriterAndEnv(t *testing.T) {
	t.Setenv("PULUMI_ACCESS_TOKEN", "pul-from-the-environment-42")
	t.Setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLE")
	FromEnv()
	var b bytes.Buffer
	w := Writer(&b)
	line := "level=WARN msg=\"listing failed: 500 pul-from-the-environment-42 IQoJb3JpZ2luX2VjEXAMPLE\"\n"
	if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := b.String(); strings.Contains(got, "pul-from") || strings.Contains(got, "IQoJ") || !strings.Contains(got, "500 [REDACTED] [REDACTED]") {
		t.Fatalf("wrote %q", got)
	}
}

func FuzzString(f *testing.F) {
	Add("fuzz-credential-0123")
	f.Add("x fuzz-credential-0123 y")
	f.Add("fuzz-credential-012")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(String(s), "fuzz-credential-0123") {
			t.Fatalf("String(%q) kept the credential", s)
		}
	})
}

// TestBounded: renewals register a token each, and the set stays bounded,
// the newest kept and scrubbed, the oldest dropped.
func TestBounded(t *testing.T) {
	first := fmt.Sprintf("bounded-token-%08d", 0)
	for i := range MaxSecrets + 10 {
		Add(fmt.Sprintf("bounded-token-%08d", i))
	}
	mu.Lock()
	n := len(secrets)
	mu.Unlock()
	if n > MaxSecrets {
		t.Errorf("%d secrets held, more than %d", n, MaxSecrets)
	}
	last := fmt.Sprintf("bounded-token-%08d", MaxSecrets+9)
	if got := String("a " + last + " b"); got != "a "+Mark+" b" {
		t.Errorf("the newest token is not scrubbed: %q", got)
	}
	if got := String(first); got != first {
		t.Errorf("the oldest token is still held")
	}
}
