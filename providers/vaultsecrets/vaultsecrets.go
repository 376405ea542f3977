// Package vaultsecrets implements the vault-secrets provider: secrets from
// HashiCorp Vault's KV engines (version 1 and 2), as the Pulumi ESC
// provider of the same name reads them.
//
//	fn::open::vault-secrets:
//	  login: ${vault.login}         # a vault-login output: address, namespace?, token
//	  read:
//	    db:
//	      path: secret/app/db       # KV v2 (secret/data/app/db works too) or v1
//	      field: password           # optional: that field alone
//
// As Vault's own `vault kv get` does, the path's mount is looked up first
// (sys/internal/ui/mounts) so a KV v2 path may be given without its data/
// segment; where that lookup is not allowed, the path is read as given.
// Each output is the secret's fields (an object) or the named field, all
// secret. A missing secret or field is an error naming the output and path.
package vaultsecrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	vault "github.com/hashicorp/vault/api"
	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/vaultclient"
)

// Name is the name environments use to open this provider: fn::open::vault-secrets.
const Name = "vault-secrets"

// Provider is the vault-secrets provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the vault-secrets provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	login := providers.ObjectSchema(schema.BuilderMap{
		"address": schema.String(),
		"token":   schema.String(),
	}, schema.BuilderMap{
		"namespace": schema.String(),
		"expiry":    schema.String(),
	}).Description("The output of a vault-login provider.")
	read := providers.ObjectSchema(schema.BuilderMap{
		"path": schema.String().Description("The secret's path, such as secret/app/db."),
	}, schema.BuilderMap{
		"field": schema.String().Description("Return this field alone."),
	})
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"login": login,
		"read":  schema.Record(schema.BuilderMap{}).AdditionalProperties(read).Description("The secrets to read, by output name."),
	}, nil).Schema()
	outputs = schema.Record(schema.BuilderMap{}).AdditionalProperties(schema.Always()).Schema()
	return inputs, outputs
}

type request struct {
	output, path, field string
	secretPath          bool // the path is secret: errors do not show it
}

// Open reads every secret of the read input.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	out, err := open(ctx, inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("vault-secrets: %w", err)
	}
	return out, nil
}

func open(ctx context.Context, inputs map[string]esc.Value) (esc.Value, error) {
	if err := providers.CheckKnown(inputs, []string{"login", "read"}); err != nil {
		return esc.Value{}, err
	}
	login, err := providers.KnownObject(inputs, "login", "address", "namespace", "token", "expiry")
	if err != nil {
		return esc.Value{}, err
	}
	if login == nil {
		return esc.Value{}, errors.New("login (a vault-login output) is required")
	}
	var address, namespace, token string
	for key, p := range map[string]*string{"address": &address, "namespace": &namespace, "token": &token} {
		if *p, err = providers.String(login, key); err != nil {
			return esc.Value{}, fmt.Errorf("login: %w", err)
		}
	}
	if address == "" || token == "" {
		return esc.Value{}, errors.New("login: address and token are required")
	}
	reqs, err := readInput(inputs)
	if err != nil {
		return esc.Value{}, err
	}
	c, err := vaultclient.New(address, namespace, token)
	if err != nil {
		return esc.Value{}, fmt.Errorf("login: %w", err)
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	out := make(map[string]esc.Value, len(reqs))
	mounts := map[string]kvMount{}
	for _, r := range reqs {
		v, err := read(ctx, c, mounts, r)
		if err != nil {
			return esc.Value{}, fmt.Errorf("%s: %w", providers.EntryPath("read", r.output), err)
		}
		out[r.output] = v
	}
	return esc.NewValue(out), nil
}

// readInput returns the secrets to read, sorted by output name.
func readInput(inputs map[string]esc.Value) ([]request, error) {
	in, err := providers.Object(inputs, "read")
	if err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, errors.New("read must name at least one secret")
	}
	reqs := make([]request, 0, len(in))
	for output, v := range in {
		at := providers.EntryPath("read", output)
		obj, ok := v.Value.(map[string]esc.Value)
		if !ok {
			return nil, fmt.Errorf("%s must be an object with path and, optionally, field", at)
		}
		if err := providers.CheckKnown(obj, []string{"path", "field"}); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		r := request{output: output}
		if r.path, err = providers.RequiredString(obj, "path"); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		r.secretPath = providers.IsSecret(obj, "path")
		if r.path = strings.Trim(r.path, "/"); !validPath(r.path) {
			return nil, fmt.Errorf("%s: path is not a secret path such as secret/app/db", at)
		}
		if r.field, err = providers.String(obj, "field"); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].output < reqs[j].output })
	return reqs, nil
}

// validPath reports whether p is a plain path: segments without traversal,
// query, fragment, escapes or control characters.
func validPath(p string) bool {
	if p == "" || len(p) > 1024 {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return !strings.ContainsAny(p, "?#%\\") && strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}

// kvMount is what the mount lookup says of a path's mount.
type kvMount struct {
	path    string // "secret/"; "" if unknown
	version string // "2" for KV v2
}

// mountOf looks up the mount of path, as `vault kv get` does; an answer
// other than a mount (no permission, an old Vault) is "unknown".
func mountOf(ctx context.Context, c *vault.Client, cache map[string]kvMount, path string) kvMount {
	first := strings.SplitN(path, "/", 2)[0]
	if m, ok := cache[first]; ok && strings.HasPrefix(path+"/", m.path) {
		return m
	}
	secret, err := c.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	var m kvMount
	if err == nil && secret != nil {
		m.path, _ = secret.Data["path"].(string)
		if opts, ok := secret.Data["options"].(map[string]any); ok {
			m.version, _ = opts["version"].(string)
		}
		if t, _ := secret.Data["type"].(string); t != "kv" && t != "generic" {
			m.version = ""
		}
	}
	if m.path != "" {
		cache[first] = m
	}
	return m
}

// read reads one secret.
func read(ctx context.Context, c *vault.Client, mounts map[string]kvMount, r request) (esc.Value, error) {
	path := r.path
	m := mountOf(ctx, c, mounts, path)
	v2 := m.version == "2"
	if v2 {
		rest := strings.TrimPrefix(path+"/", m.path)
		if !strings.HasPrefix(rest, "data/") {
			path = strings.TrimSuffix(m.path+"data/"+rest, "/")
		}
	}
	op := "read " + path
	if r.secretPath {
		op = "read (a secret path)"
	}
	secret, err := c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return esc.Value{}, vaultclient.Describe(op, err)
	}
	if secret == nil || secret.Data == nil {
		return esc.Value{}, fmt.Errorf("%s: no secret at this path", op)
	}
	data := secret.Data
	if v2 || (m.path == "" && isKVv2(data)) {
		inner, ok := data["data"].(map[string]any)
		if !ok {
			return esc.Value{}, fmt.Errorf("%s: the secret's version is deleted or destroyed", op)
		}
		data = inner
	}
	if r.field == "" {
		return secretValue(data), nil
	}
	v, ok := data[r.field]
	if !ok {
		fields := make([]string, 0, len(data))
		for k := range data {
			fields = append(fields, k)
		}
		sort.Strings(fields)
		return esc.Value{}, fmt.Errorf("%s: the secret has no such field (its fields are %s)", op, strings.Join(fields, ", "))
	}
	return secretValue(v), nil
}

// isKVv2 reports whether data is a KV v2 answer: data and metadata.
func isKVv2(data map[string]any) bool {
	_, d := data["data"]
	_, m := data["metadata"]
	return d && m && len(data) == 2
}

// secretValue converts a value of Vault's JSON into a secret esc.Value.
func secretValue(v any) esc.Value {
	switch v := v.(type) {
	case nil:
		return esc.Value{Value: nil, Secret: true}
	case string:
		return esc.NewSecret(v)
	case bool:
		return esc.NewSecret(v)
	case json.Number:
		return esc.NewSecret(v)
	case float64:
		return esc.NewSecret(json.Number(fmt.Sprint(v)))
	case []any:
		items := make([]esc.Value, len(v))
		for i, item := range v {
			items[i] = secretValue(item)
		}
		return esc.NewSecret(items)
	case map[string]any:
		m := make(map[string]esc.Value, len(v))
		for k, item := range v {
			m[k] = secretValue(item)
		}
		return esc.NewSecret(m)
	}
	return esc.NewSecret(fmt.Sprint(v))
}
