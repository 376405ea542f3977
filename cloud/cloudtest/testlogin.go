package cloudtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
)

// TestLoginName is the name definitions open TestLogin with:
// fn::open::test-login.
const TestLoginName = "test-login"

// TestLogin stands in for the service's credential providers (aws-login
// and friends): every open issues new credentials that expire after ttl
// (default 1h).
//
//	fn::open::test-login:
//	  ttl: 10m
//
// Outputs: accessKeyId (new on every open, "ASIA" and a counter),
// secretAccessKey and sessionToken (secrets), and expiration (RFC 3339).
type TestLogin struct {
	opens atomic.Int64
}

var _ esc.Provider = (*TestLogin)(nil)

// Opens returns how many times credentials were issued.
func (p *TestLogin) Opens() int64 { return p.opens.Load() }

// Schema returns the provider's inputs and outputs.
func (p *TestLogin) Schema() (inputs, outputs *schema.Schema) {
	inputs = schema.Object().Properties(schema.BuilderMap{
		"ttl": schema.String().Description("Lifetime of the credentials, a Go duration (default 1h)."),
	}).Schema()
	outputs = schema.Record(schema.BuilderMap{
		"accessKeyId":     schema.String(),
		"secretAccessKey": schema.String(),
		"sessionToken":    schema.String(),
		"expiration":      schema.String(),
	}).Schema()
	return inputs, outputs
}

// Open issues credentials.
func (p *TestLogin) Open(_ context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	ttlText, err := providers.String(inputs, "ttl")
	if err != nil {
		return esc.Value{}, fmt.Errorf("test-login: %w", err)
	}
	ttl := time.Hour
	if ttlText != "" {
		if ttl, err = time.ParseDuration(ttlText); err != nil || ttl <= 0 {
			return esc.Value{}, fmt.Errorf("test-login: ttl %q: want a positive duration", ttlText)
		}
	}
	n := p.opens.Add(1)
	return esc.NewValue(map[string]esc.Value{
		"accessKeyId":     esc.NewValue(fmt.Sprintf("ASIATEST%012d", n)),
		"secretAccessKey": esc.NewSecret("secret-" + randomHex(16)),
		"sessionToken":    esc.NewSecret("session-" + randomHex(24)),
		"expiration":      esc.NewValue(time.Now().Add(ttl).UTC().Format(time.RFC3339Nano)),
	}), nil
}
