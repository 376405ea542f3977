// Package token implements the token provider: a short-lived random token,
// a stand-in for real expiring credentials (STS sessions, OIDC tokens) in
// tests and examples. It calls no service.
//
//	fn::open::token:
//	  ttl: 1h          # lifetime, a Go duration (default 1h)
//	  failIfExists: /tmp/fail-token   # optional: fail while this file exists
//	  delay: 500ms     # optional: take this long to answer, like a slow service
//
// Outputs: token (secret, new random bytes on every open), issuedAt and
// expiresAt (RFC 3339, nanoseconds). The expiry is reported to the cache,
// which renews the environment before it.
package token

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
)

// Name is the name environments use to open this provider: fn::open::token.
const Name = "token"

// DefaultTTL is the lifetime of a token when the inputs give none.
const DefaultTTL = time.Hour

// Provider is the token provider. The zero value is ready to use.
type Provider struct {
	opens atomic.Int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

var _ esc.Provider = (*Provider)(nil)

// Opens returns how many times Open has been called.
func (p *Provider) Opens() int64 { return p.opens.Load() }

// Schema returns the provider's inputs and outputs.
func (p *Provider) Schema() (inputs, outputs *schema.Schema) {
	inputs = schema.Object().Properties(schema.BuilderMap{
		"ttl":          schema.String().Description("Lifetime of the token, a Go duration such as 30s or 1h."),
		"failIfExists": schema.String().Description("Fail while a file exists at this path (for failure tests)."),
		"delay":        schema.String().Description("Take this long to answer, a Go duration (for latency tests)."),
	}).Schema()
	outputs = schema.Record(schema.BuilderMap{
		"token":     schema.String(),
		"issuedAt":  schema.String(),
		"expiresAt": schema.String(),
	}).Schema()
	return inputs, outputs
}

// Open issues a new token and reports its expiry.
func (p *Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	p.opens.Add(1)
	ttlText, err := providers.String(inputs, "ttl")
	if err != nil {
		return esc.Value{}, fmt.Errorf("token: %w", err)
	}
	ttl := DefaultTTL
	if ttlText != "" {
		if ttl, err = time.ParseDuration(ttlText); err != nil || ttl <= 0 {
			return esc.Value{}, fmt.Errorf("token: ttl %q: want a positive duration such as 30s or 1h", ttlText)
		}
	}
	failIfExists, err := providers.String(inputs, "failIfExists")
	if err != nil {
		return esc.Value{}, fmt.Errorf("token: %w", err)
	}
	if failIfExists != "" {
		if _, err := os.Stat(failIfExists); err == nil {
			return esc.Value{}, errors.New("token: unavailable (failIfExists is present)")
		}
	}
	delayText, err := providers.String(inputs, "delay")
	if err != nil {
		return esc.Value{}, fmt.Errorf("token: %w", err)
	}
	if delayText != "" {
		delay, err := time.ParseDuration(delayText)
		if err != nil || delay < 0 {
			return esc.Value{}, fmt.Errorf("token: delay %q: want a duration such as 500ms", delayText)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return esc.Value{}, fmt.Errorf("token: %w", ctx.Err())
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return esc.Value{}, fmt.Errorf("token: %w", err)
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	expires := now.Add(ttl)
	providers.ReportExpiry(ctx, expires)
	return esc.NewValue(map[string]esc.Value{
		"token":     esc.NewSecret(hex.EncodeToString(b[:])),
		"issuedAt":  esc.NewValue(now.UTC().Format(time.RFC3339Nano)),
		"expiresAt": esc.NewValue(expires.UTC().Format(time.RFC3339Nano)),
	}), nil
}

// Definition returns an environment definition that opens this provider with
// the given inputs (empty ones left to their defaults) and exports TOKEN and
// EXPIRES (the token's expiresAt): the fixture of the expiry tests.
func Definition(ttl, delay, failIfExists string) string {
	return "values:\n  creds:\n    fn::open::token:\n" +
		"      ttl: \"" + ttl + "\"\n" +
		"      delay: \"" + delay + "\"\n" +
		"      failIfExists: \"" + failIfExists + "\"\n" +
		"  environmentVariables:\n    TOKEN: ${creds.token}\n    EXPIRES: ${creds.expiresAt}\n"
}
