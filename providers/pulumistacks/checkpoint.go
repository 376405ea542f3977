package pulumistacks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/pulumi/esc"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/sig"
)

// maxCheckpointBytes bounds a decompressed checkpoint.
const maxCheckpointBytes = 512 << 20

// decodeCheckpoint parses a checkpoint as the CLI writes it (JSON, or JSON
// compressed with gzip, told apart by content as the CLI does) and returns
// its latest deployment, nil for a stack that was never updated. project is
// the project the stack was asked for: a checkpoint of another project (the
// legacy layout has no project directories) is an error.
func decodeCheckpoint(data []byte, project string) (*apitype.DeploymentV3, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("corrupt checkpoint: gzip: %w", err)
		}
		plain, err := io.ReadAll(io.LimitReader(zr, maxCheckpointBytes+1))
		if err != nil {
			return nil, fmt.Errorf("corrupt checkpoint: gzip: %w", err)
		}
		if len(plain) > maxCheckpointBytes {
			return nil, fmt.Errorf("checkpoint larger than %d MiB", maxCheckpointBytes>>20)
		}
		data = plain
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, errors.New("zstd-compressed checkpoints are not supported (PULUMI_SELF_MANAGED_STATE_COMPRESSION=zstd); use gzip or none")
	}

	var versioned apitype.VersionedCheckpoint
	if err := json.Unmarshal(data, &versioned); err != nil {
		return nil, fmt.Errorf("corrupt checkpoint: %w", jsonError(err))
	}
	if versioned.Version == 0 && len(versioned.Checkpoint) == 0 {
		return nil, errors.New("corrupt checkpoint: no version and no checkpoint")
	}
	if err := checkVersion("checkpoint", versioned.Version); err != nil {
		return nil, err
	}
	// Versions 1 and 2 differ from 3 only in fields this provider does not
	// read; resources carry type, urn and outputs in all of them.
	var chk apitype.CheckpointV3
	dec := json.NewDecoder(bytes.NewReader(versioned.Checkpoint))
	dec.UseNumber() // numbers stay exact, as ESC holds them
	if err := dec.Decode(&chk); err != nil {
		return nil, fmt.Errorf("corrupt checkpoint: %w", jsonError(err))
	}
	if chk.Latest == nil {
		return nil, nil
	}
	if err := checkProject("checkpoint", chk.Latest, project); err != nil {
		return nil, err
	}
	return chk.Latest, nil
}

// checkVersion checks the schema version of a checkpoint or deployment
// (what names it).
func checkVersion(what string, version int) error {
	if version < 1 || version > apitype.DeploymentSchemaVersionLatest {
		return fmt.Errorf("%s version %d is not supported (known: 1 to %d)",
			what, version, apitype.DeploymentSchemaVersionLatest)
	}
	return nil
}

// checkProject checks that dep, of a checkpoint or deployment (what names
// it), is a stack of project.
func checkProject(what string, dep *apitype.DeploymentV3, project string) error {
	if root := rootStack(dep); root != nil && root.URN.IsValid() && root.URN.Project().String() != project {
		return fmt.Errorf("the %s there is of project %q, not %q", what, root.URN.Project(), project)
	}
	return nil
}

// jsonError drops the Go type names from JSON errors.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Errorf("invalid JSON at byte %d: %v", syntax.Offset, syntax)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("unexpected JSON %s at %q", typ.Value, typ.Field)
	}
	return err
}

// rootStack returns the deployment's pulumi:pulumi:Stack resource.
func rootStack(dep *apitype.DeploymentV3) *apitype.ResourceV3 {
	for i := range dep.Resources {
		r := &dep.Resources[i]
		if r.Type == resource.RootStackType && r.Parent == "" && !r.Delete {
			return r
		}
	}
	return nil
}

// stackOutputs returns the outputs of dep's stack resource as an object,
// secrets decrypted and marked secret. decrypter is called at the first
// ciphertext only, so stacks without secrets need no passphrase.
func stackOutputs(ctx context.Context, dep *apitype.DeploymentV3, decrypter func() (config.Decrypter, error)) (esc.Value, error) {
	if dep == nil {
		return esc.NewValue(map[string]esc.Value{}), nil
	}
	root := rootStack(dep)
	if root == nil {
		return esc.NewValue(map[string]esc.Value{}), nil
	}
	c := &converter{ctx: ctx, decrypter: decrypter}
	return c.convert(map[string]any(root.Outputs), "")
}

type converter struct {
	ctx       context.Context
	decrypter func() (config.Decrypter, error)
	dec       config.Decrypter
}

// convert turns a deserialized checkpoint value into an ESC value. path
// names the output for errors.
func (c *converter) convert(v any, path string) (esc.Value, error) {
	switch v := v.(type) {
	case nil:
		return esc.Value{}, nil
	case bool:
		return esc.NewValue(v), nil
	case json.Number:
		return esc.NewValue(v), nil
	case float64: // not produced with UseNumber; kept for safety
		return esc.NewValue(json.Number(fmt.Sprint(v))), nil
	case string:
		return esc.NewValue(v), nil
	case []any:
		vs := make([]esc.Value, len(v))
		for i, e := range v {
			ev, err := c.convert(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return esc.Value{}, err
			}
			vs[i] = ev
		}
		return esc.NewValue(vs), nil
	case map[string]any:
		if s, ok := v[sig.Key].(string); ok && s == sig.Secret {
			return c.secret(v, path)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		vs := make(map[string]esc.Value, len(v))
		for _, k := range keys {
			child := k
			if path != "" {
				child = path + "." + k
			}
			ev, err := c.convert(v[k], child)
			if err != nil {
				return esc.Value{}, err
			}
			vs[k] = ev
		}
		// Assets, archives and resource references stay objects, signature
		// key included, as the checkpoint holds them.
		return esc.NewValue(vs), nil
	default:
		return esc.Value{}, fmt.Errorf("output %s: unexpected value of type %T", path, v)
	}
}

// secret decodes a secret value, {sig: secret, ciphertext|plaintext: JSON},
// into a secret ESC value. Errors never include the plaintext.
func (c *converter) secret(v map[string]any, path string) (esc.Value, error) {
	ciphertext, hasCipher := v["ciphertext"].(string)
	plaintext, hasPlain := v["plaintext"].(string)
	if hasCipher == hasPlain {
		return esc.Value{}, fmt.Errorf("output %s: malformed secret: want one of ciphertext or plaintext", path)
	}
	if hasCipher {
		if c.dec == nil {
			dec, err := c.decrypter()
			if err != nil {
				return esc.Value{}, fmt.Errorf("output %s is secret: %w", path, err)
			}
			c.dec = dec
		}
		pt, err := c.dec.DecryptValue(c.ctx, ciphertext)
		if err != nil {
			return esc.Value{}, fmt.Errorf("output %s: cannot decrypt secret (corrupt ciphertext)", path)
		}
		plaintext = pt
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(plaintext)))
	dec.UseNumber()
	var elem any
	if err := dec.Decode(&elem); err != nil {
		return esc.Value{}, fmt.Errorf("output %s: secret is not JSON", path)
	}
	ev, err := c.convert(elem, path)
	if err != nil {
		return esc.Value{}, err
	}
	return ev.MakeSecret(), nil
}
