// Package providers holds the registry of fn::open providers that escfs
// environments may call, and the helpers those providers share.
//
// Providers know nothing of FUSE or caching: they turn inputs into values and,
// where they know it, report when those values expire.
package providers

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/pulumi/esc"
)

// Registry maps provider names (the part after fn::open::) to providers. It
// implements the ProviderLoader interface of github.com/pulumi/esc/eval.
// A Registry is read-only after construction and safe for concurrent use.
type Registry struct {
	providers map[string]esc.Provider
}

// NewRegistry returns a registry holding the given providers by name.
func NewRegistry(providers map[string]esc.Provider) *Registry {
	m := make(map[string]esc.Provider, len(providers))
	for name, p := range providers {
		m[name] = p
	}
	return &Registry{providers: m}
}

// Names returns the registered provider names in sorted order.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.providers))
	for name := range r.providers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// LoadProvider returns the provider with the given name, or an error that
// names the providers this build knows. The provider's errors never carry
// a secret input: see Scrubbed.
func (r *Registry) LoadProvider(_ context.Context, name string) (esc.Provider, error) {
	if p, ok := r.providers[name]; ok {
		return Scrubbed{p}, nil
	}
	return nil, fmt.Errorf("unknown provider %q (escfs knows: %s)", name, strings.Join(r.Names(), ", "))
}

// LoadRotator reports that escfs does not rotate secrets: a mount is read-only.
func (r *Registry) LoadRotator(_ context.Context, name string) (esc.Rotator, error) {
	return nil, fmt.Errorf("unknown rotator %q: escfs does not rotate secrets", name)
}

// Scrubbed is a provider whose errors never quote a secret input: every
// string that the inputs hold as secret (a value marked secret, or
// anything beneath one) is replaced by "[secret]" in Open's error, where a
// provider's own message, or a service's answer it quotes (a secret's name
// in "not found"), would show it.
type Scrubbed struct{ esc.Provider }

// minSecret is the length below which a secret input is not scrubbed: one
// or two characters would blank out ordinary text, and reveal nothing.
const minSecret = 3

// SecretMark replaces a secret input in a provider's error.
const SecretMark = "[secret]"

// Open calls the provider and scrubs its error.
func (s Scrubbed) Open(ctx context.Context, inputs map[string]esc.Value, execCtx esc.EnvExecContext) (esc.Value, error) {
	v, err := s.Provider.Open(ctx, inputs, execCtx)
	if err == nil {
		return v, nil
	}
	var secrets []string
	collectSecrets(esc.NewValue(inputs), false, &secrets)
	if len(secrets) == 0 {
		return v, err
	}
	// Longest first: a secret that contains another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	msg := err.Error()
	for _, sec := range secrets {
		msg = strings.ReplaceAll(msg, sec, SecretMark)
	}
	if msg == err.Error() {
		return v, err
	}
	return v, &scrubbedError{msg: msg, err: err}
}

// collectSecrets appends the strings of v that are secret (inside is
// whether an enclosing value is).
func collectSecrets(v esc.Value, inside bool, out *[]string) {
	inside = inside || v.Secret
	switch x := v.Value.(type) {
	case string:
		if inside && len(x) >= minSecret {
			*out = append(*out, variants(x)...)
		}
	case []esc.Value:
		for _, item := range x {
			collectSecrets(item, inside, out)
		}
	case map[string]esc.Value:
		for _, item := range x {
			collectSecrets(item, inside, out)
		}
	}
}

// variants returns s and the forms of it that messages print: lowercased
// (as hosts are), and, for a URL, its host and host name, which a service
// names on their own ("the resource principal named https://HOST").
func variants(s string) []string {
	out := []string{s}
	if l := strings.ToLower(s); l != s {
		out = append(out, l)
	}
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		for _, h := range []string{u.Host, u.Hostname()} {
			if len(h) >= minSecret {
				out = append(out, h, strings.ToLower(h))
			}
		}
	}
	return out
}

// scrubbedError is an error whose message had secrets replaced; it still
// wraps the original, for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
