// Package providers holds the registry of fn::open providers that escfs
// environments may call, and the helpers those providers share.
//
// Providers know nothing of FUSE or caching: they turn inputs into values and,
// where they know it, report when those values expire.
package providers

import (
	"context"
	"fmt"
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
// names the providers this build knows.
func (r *Registry) LoadProvider(_ context.Context, name string) (esc.Provider, error) {
	if p, ok := r.providers[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown provider %q (escfs knows: %s)", name, strings.Join(r.Names(), ", "))
}

// LoadRotator reports that escfs does not rotate secrets: a mount is read-only.
func (r *Registry) LoadRotator(_ context.Context, name string) (esc.Rotator, error) {
	return nil, fmt.Errorf("unknown rotator %q: escfs does not rotate secrets", name)
}
