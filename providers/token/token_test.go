package token

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers"
)

func TestOpen(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	p := &Provider{Now: func() time.Time { return now }}
	ctx, expiry := providers.WithExpiry(context.Background())
	v, err := p.Open(ctx, map[string]esc.Value{"ttl": esc.NewValue("90s")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := v.Value.(map[string]esc.Value)
	if tok := out["token"]; !tok.Secret || len(tok.Value.(string)) != 32 {
		t.Errorf("token = %+v, want a secret of 32 hex digits", tok)
	}
	if got := out["expiresAt"].Value.(string); got != "2026-11-27T12:01:30Z" {
		t.Errorf("expiresAt = %s", got)
	}
	if got := expiry.Earliest(); !got.Equal(now.Add(90 * time.Second)) {
		t.Errorf("reported expiry = %v", got)
	}
	v2, _ := p.Open(ctx, map[string]esc.Value{}, nil)
	if v2.Value.(map[string]esc.Value)["token"].Value == out["token"].Value {
		t.Error("two opens returned the same token")
	}
	if got := expiry.Earliest(); !got.Equal(now.Add(90 * time.Second)) {
		t.Errorf("earliest expiry moved to %v; the default ttl is longer", got)
	}
	if p.Opens() != 2 {
		t.Errorf("Opens = %d", p.Opens())
	}
}

func TestOpenErrors(t *testing.T) {
	fail := filepath.Join(t.TempDir(), "fail")
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		inputs map[string]esc.Value
		want   string
	}{
		{"bad ttl", map[string]esc.Value{"ttl": esc.NewValue("soon")}, `ttl "soon"`},
		{"negative ttl", map[string]esc.Value{"ttl": esc.NewValue("-1s")}, `ttl "-1s"`},
		{"ttl not a string", map[string]esc.Value{"ttl": esc.NewValue(true)}, `"ttl" must be a string`},
		{"bad delay", map[string]esc.Value{"delay": esc.NewValue("x")}, `delay "x"`},
		{"failIfExists present", map[string]esc.Value{"failIfExists": esc.NewValue(fail)}, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Provider{}).Open(context.Background(), tt.inputs, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestOpenDelayHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := (&Provider{}).Open(ctx, map[string]esc.Value{"delay": esc.NewValue("1h")}, nil)
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}
