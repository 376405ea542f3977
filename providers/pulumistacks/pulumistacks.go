// Package pulumistacks implements the pulumi-stacks provider: the outputs of
// Pulumi IaC stacks, read from the state the Pulumi CLI keeps in a
// self-managed ("diy") backend or in Pulumi Cloud.
//
//	fn::open::pulumi-stacks:
//	  stacks:
//	    eks-cluster:
//	      stack: eks-cluster/demo     # project/stack (or organization/project/stack)
//	  backend: file://~               # optional: file://PATH, s3://BUCKET[/PREFIX]?region=..., https://api.pulumi.com
//
// The result maps each name under stacks to the stack's outputs as the stack
// holds them: objects stay objects, numbers numbers, and secret outputs come
// out as secret values. Secret outputs are decrypted with the stack's
// secrets provider: a passphrase one with PULUMI_CONFIG_PASSPHRASE or
// PULUMI_CONFIG_PASSPHRASE_FILE, as for the CLI, and on Pulumi Cloud the
// service's own (cloud.go) by the service.
//
// Without a backend input the backend is the one the Pulumi CLI would use:
// PULUMI_BACKEND_URL, else the current login in ~/.pulumi/credentials.json
// (see BackendURL). On Pulumi Cloud the stack is read with the token of the
// login for its URL, or PULUMI_ACCESS_TOKEN (see pulumiaccount.Current), and
// project/stack is in the account's default organization.
//
// Stack outputs carry no expiry. For file:// backends the checkpoint files
// read are reported to the cache (providers.ReportFile), which evaluates the
// environment again when a stack is updated.
package pulumistacks

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"

	"github.com/escfs/escfs/providers"
)

// Name is the name environments use to open this provider: fn::open::pulumi-stacks.
const Name = "pulumi-stacks"

// Provider is the pulumi-stacks provider. The zero value is ready to use and
// safe for concurrent use.
type Provider struct {
	// OpenBackend opens the backend at a resolved URL; nil means OpenBackend
	// of this package. It is the seam for backends this package lacks.
	OpenBackend func(ctx context.Context, url string) (Backend, error)
}

var _ esc.Provider = (*Provider)(nil)

// Schema returns the provider's inputs and outputs.
func (p *Provider) Schema() (inputs, outputs *schema.Schema) {
	stack := schema.Record(schema.BuilderMap{
		"stack": schema.String().Description("The project-qualified name of the stack, e.g. myProject/dev, or myOrg/myProject/dev on Pulumi Cloud."),
	})
	inputs = schema.Object().Properties(schema.BuilderMap{
		"stacks": schema.Object().AdditionalProperties(stack).
			Description("A map of names to stacks to get outputs from."),
		"backend": schema.String().
			Description("The backend URL (file://PATH, s3://BUCKET?region=..., https://api.pulumi.com); default: PULUMI_BACKEND_URL, else the current Pulumi CLI login."),
	}).Required("stacks").Schema()
	outputs = schema.Always()
	return inputs, outputs
}

// Open reads the outputs of every requested stack.
func (p *Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	stacks, err := providers.Object(inputs, "stacks")
	if err != nil {
		return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
	}
	if stacks == nil {
		return esc.Value{}, fmt.Errorf("%s: input \"stacks\" is required", Name)
	}
	backendInput, err := providers.String(inputs, "backend")
	if err != nil {
		return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
	}
	url, err := BackendURL(backendInput)
	if err != nil {
		return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
	}
	if backendInput != "" {
		// Named by the definition, not configured by the user: the
		// user's credentials must not follow it anywhere.
		if err := checkNamedBackend(backendInput); err != nil {
			return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
		}
	}
	open := p.OpenBackend
	if open == nil {
		open = OpenBackend
	}
	backend, err := open(ctx, url)
	if err != nil {
		return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
	}

	names := make([]string, 0, len(stacks))
	for name := range stacks {
		names = append(names, name)
	}
	sort.Strings(names)
	result := make(map[string]esc.Value, len(stacks))
	for _, name := range names {
		spec, ok := stacks[name].Value.(map[string]esc.Value)
		if !ok {
			return esc.Value{}, fmt.Errorf("%s: stacks.%s must be an object with a stack", Name, name)
		}
		ref, err := providers.String(spec, "stack")
		if err != nil || ref == "" {
			return esc.Value{}, fmt.Errorf("%s: stacks.%s: a stack (project/stack) is required", Name, name)
		}
		outputs, err := backend.ReadStack(ctx, ref)
		if err != nil {
			return esc.Value{}, fmt.Errorf("%s: %w", Name, err)
		}
		result[name] = outputs
	}
	return esc.NewValue(result), nil
}

// ParseStackRef splits a stack reference, "project/stack" or
// "organization/project/stack" (self-managed backends know only the
// organization "organization"), and checks both names as the Pulumi CLI does.
func ParseStackRef(ref string) (project, stack string, err error) {
	org, project, stack, err := splitStackRef(ref)
	if err != nil {
		return "", "", err
	}
	if org != "" && org != "organization" {
		return "", "", fmt.Errorf("stack %q: self-managed backends have no organizations: write project/stack (or organization/project/stack)", ref)
	}
	return project, stack, nil
}

// ownerName is the form of organization names the Pulumi Cloud accepts
// (pulumi/pulumi pkg/backend/httpstate: stackOwnerRegexp).
var ownerName = regexp.MustCompile("^[a-zA-Z0-9][a-zA-Z0-9-_]{1,38}[a-zA-Z0-9]$")

// splitStackRef splits "project/stack" (org "") or "org/project/stack" and
// checks the project and stack names as the Pulumi CLI does.
func splitStackRef(ref string) (org, project, stack string, err error) {
	parts := strings.Split(ref, "/")
	switch len(parts) {
	case 2:
		project, stack = parts[0], parts[1]
	case 3:
		org, project, stack = parts[0], parts[1], parts[2]
		if !ownerName.MatchString(org) {
			return "", "", "", fmt.Errorf("stack %q: organization: invalid name %q", ref, org)
		}
	default:
		return "", "", "", fmt.Errorf("stack %q: want a project-qualified name such as myProject/dev", ref)
	}
	if project == "." || project == ".." {
		return "", "", "", fmt.Errorf("stack %q: project: invalid name %q", ref, project)
	}
	if err := tokens.ValidateProjectName(project); err != nil {
		return "", "", "", fmt.Errorf("stack %q: project: %w", ref, err)
	}
	if _, err := tokens.ParseStackName(stack); err != nil {
		return "", "", "", fmt.Errorf("stack %q: %w", ref, err)
	}
	return org, project, stack, nil
}

// maxCrypters bounds the crypter cache; past it the cache starts over.
const maxCrypters = 64

// crypters caches passphrase crypters, and incorrect passphrases, by hash
// of salt state and passphrase: deriving a key takes a second of PBKDF2,
// which every evaluation would otherwise pay. Like the Pulumi CLI's cache,
// it is process-wide.
var crypters struct {
	sync.Mutex
	m map[[32]byte]cachedCrypter // GUARDED_BY(crypters)
}

type cachedCrypter struct {
	crypter config.Crypter
	err     error
}

// crypter returns the passphrase crypter for a salt state.
func crypter(passphrase, state string) (config.Crypter, error) {
	h := sha256.New()
	h.Write([]byte(state))
	h.Write([]byte{0})
	h.Write([]byte(passphrase))
	var key [32]byte
	copy(key[:], h.Sum(nil))

	crypters.Lock()
	c, ok := crypters.m[key]
	crypters.Unlock()
	if ok {
		return c.crypter, c.err
	}
	c.crypter, c.err = crypterFromState(passphrase, state)
	if c.err != nil && !errors.Is(c.err, ErrIncorrectPassphrase) {
		return nil, c.err
	}
	crypters.Lock()
	defer crypters.Unlock()
	if crypters.m == nil || len(crypters.m) >= maxCrypters {
		crypters.m = map[[32]byte]cachedCrypter{}
	}
	crypters.m[key] = c
	return c.crypter, c.err
}

// errNotFound marks a stack that is not in the backend.
var errNotFound = errors.New("stack not found")
