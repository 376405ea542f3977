// Package stacktest writes Pulumi stack state the way the Pulumi CLI's
// self-managed ("diy") backend does, for tests of the pulumi-stacks provider
// and of anything built on it: real checkpoints, made with the Pulumi SDK's
// deployment types, whose secret outputs are encrypted with the SDK's
// passphrase crypter under a passphrase secrets provider, exactly as
// `pulumi up` with PULUMI_CONFIG_PASSPHRASE leaves them.
//
// A backend directory for file://DIR, with a kubeconfig as a secret output:
//
//	dir := t.TempDir()
//	_, err := stacktest.Write(dir, "eks-cluster", "demo",
//		map[string]any{"clusterName": "demo"},
//		map[string]any{"kubeconfig": kubeconfigObject}, // secret outputs
//		"the passphrase", stacktest.Options{})
//	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "the passphrase")
//	// fn::open::pulumi-stacks: {backend: file://DIR, stacks: {eks-cluster: {stack: eks-cluster/demo}}}
//
// For an s3:// backend, upload Checkpoint's bytes under Key, and
// MetaData under MetaKey. For a Pulumi Cloud backend, NewCloud serves the
// same deployments over HTTP (cloud.go), their secrets the service's own.
//
// Deriving a passphrase key takes the SDK's 1,000,000 rounds of PBKDF2
// (about a second); Write does it once per call, and only when the stack has
// secret outputs or a passphrase.
package stacktest

import (
	"bytes"
	"compress/gzip"
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/sig"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

// Options select how a checkpoint is laid out and encoded.
type Options struct {
	// Gzip compresses the checkpoint into STACK.json.gz, as the CLI does
	// with PULUMI_SELF_MANAGED_STATE_GZIP=true.
	Gzip bool
	// OldLayout uses the legacy layout of backends made before projects
	// had directories: .pulumi/stacks/STACK.json, and no .pulumi/meta.yaml.
	OldLayout bool
	// PlaintextSecrets writes secret outputs unencrypted,
	// {sig: secret, plaintext: JSON}, as a checkpoint exported with
	// `pulumi stack export --show-secrets` holds them. No key is derived.
	PlaintextSecrets bool
}

// CLIVersion is the Pulumi CLI version the checkpoints claim to be written by.
const CLIVersion = "v3.243.0"

// MetaKey is the backend metadata file of the project layout, relative to
// the backend root; MetaData is what the CLI writes there.
const MetaKey = ".pulumi/meta.yaml"

// MetaData is the content of MetaKey for the project layout.
var MetaData = []byte("version: 1\n")

// Key returns where the checkpoint of project/stack is, relative to the
// backend root (slash-separated): .pulumi/stacks/PROJECT/STACK.json, or
// .pulumi/stacks/STACK.json with OldLayout, plus .gz with Gzip.
func Key(project, stack string, opts Options) string {
	k := path.Join(".pulumi/stacks", project, stack) + ".json"
	if opts.OldLayout {
		k = path.Join(".pulumi/stacks", stack) + ".json"
	}
	if opts.Gzip {
		k += ".gz"
	}
	return k
}

// Write writes the checkpoint of project/stack into the backend directory
// dir (the PATH of file://PATH) and returns the file's path. outputs are the
// stack's plain outputs, secretOutputs its secret ones (their names must
// differ); values are anything encoding/json marshals. passphrase is the
// stack's passphrase (it may be empty, as with the CLI). Without OldLayout,
// Write also creates dir/.pulumi/meta.yaml if it is missing.
func Write(dir, project, stack string, outputs, secretOutputs map[string]any, passphrase string, opts Options) (string, error) {
	data, err := Checkpoint(project, stack, outputs, secretOutputs, passphrase, opts)
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, filepath.FromSlash(Key(project, stack, opts)))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", err
	}
	if !opts.OldLayout {
		meta := filepath.Join(dir, filepath.FromSlash(MetaKey))
		if _, err := os.Stat(meta); os.IsNotExist(err) {
			if err := os.WriteFile(meta, MetaData, 0o644); err != nil {
				return "", err
			}
		}
	}
	// Write and rename, as the CLI's bucket does, so readers never see half a file.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, file); err != nil {
		return "", err
	}
	return file, nil
}

// Checkpoint returns the bytes of the checkpoint file of project/stack (see
// Write), gzip-compressed with Gzip.
func Checkpoint(project, stack string, outputs, secretOutputs map[string]any, passphrase string, opts Options) ([]byte, error) {
	var providers *apitype.SecretsProvidersV1
	var encrypt func(string) (string, error)
	if (len(secretOutputs) > 0 && !opts.PlaintextSecrets) || passphrase != "" {
		var err error
		if providers, encrypt, err = passphraseProvider(passphrase); err != nil {
			return nil, err
		}
	}
	stackName := "organization/" + project + "/" + stack
	if opts.OldLayout {
		stackName = stack
	}
	dep, err := deployment(project, stack, outputs, secretOutputs, providers, encrypt, opts.PlaintextSecrets)
	if err != nil {
		return nil, err
	}
	inner, err := marshal(apitype.CheckpointV3{Stack: tokens.QName(stackName), Latest: dep})
	if err != nil {
		return nil, err
	}
	data, err := marshal(apitype.VersionedCheckpoint{Version: apitype.DeploymentSchemaVersionCurrent, Checkpoint: inner})
	if err != nil {
		return nil, err
	}
	if !opts.Gzip {
		return data, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// passphraseProvider returns a new passphrase secrets provider and its
// encryption.
func passphraseProvider(passphrase string) (*apitype.SecretsProvidersV1, func(string) (string, error), error) {
	state, crypter, err := NewPassphraseState(passphrase)
	if err != nil {
		return nil, nil, err
	}
	raw, err := json.Marshal(map[string]string{"salt": state})
	if err != nil {
		return nil, nil, err
	}
	encrypt := func(plain string) (string, error) { return crypter.EncryptValue(context.Background(), plain) }
	return &apitype.SecretsProvidersV1{Type: "passphrase", State: raw}, encrypt, nil
}

// deployment returns the latest deployment of project/stack as `pulumi up`
// leaves it: the stack resource with outputs and secretOutputs, and a
// provider resource. Secret outputs are encrypted with encrypt under the
// secrets provider providers, or left in plaintext with plaintextSecrets.
func deployment(project, stack string, outputs, secretOutputs map[string]any,
	providers *apitype.SecretsProvidersV1, encrypt func(string) (string, error), plaintextSecrets bool,
) (*apitype.DeploymentV3, error) {
	if err := tokens.ValidateProjectName(project); err != nil {
		return nil, fmt.Errorf("stacktest: project %q: %w", project, err)
	}
	if _, err := tokens.ParseStackName(stack); err != nil {
		return nil, fmt.Errorf("stacktest: stack %q: %w", stack, err)
	}
	all := map[string]any{}
	for k, v := range outputs {
		all[k] = v
	}
	for k, v := range secretOutputs {
		if _, dup := all[k]; dup {
			return nil, fmt.Errorf("stacktest: output %q is both plain and secret", k)
		}
		plain, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("stacktest: secret output %q: %w", k, err)
		}
		if plaintextSecrets {
			all[k] = map[string]any{sig.Key: sig.Secret, "plaintext": string(plain)}
			continue
		}
		ct, err := encrypt(string(plain))
		if err != nil {
			return nil, fmt.Errorf("stacktest: secret output %q: %w", k, err)
		}
		all[k] = map[string]any{sig.Key: sig.Secret, "ciphertext": ct}
	}

	qname := tokens.QName(stack)
	stackURN := resource.DefaultRootStackURN(qname, tokens.PackageName(project))
	providerURN := resource.NewURN(qname, tokens.PackageName(project), "", "pulumi:providers:kubernetes", "default_4_18_0")
	manifest := apitype.ManifestV1{Time: time.Now().UTC().Truncate(time.Second), Version: CLIVersion}
	manifest.Magic = manifest.NewMagic()
	return &apitype.DeploymentV3{
		Manifest:         manifest,
		SecretsProviders: providers,
		Resources: []apitype.ResourceV3{
			{
				URN:     stackURN,
				Custom:  false,
				Type:    resource.RootStackType,
				Outputs: all,
			},
			{
				URN:     providerURN,
				Custom:  true,
				ID:      "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
				Type:    "pulumi:providers:kubernetes",
				Inputs:  map[string]any{"version": "4.18.0"},
				Outputs: map[string]any{"version": "4.18.0"},
			},
		},
	}, nil
}

// marshal encodes compact JSON without HTML escaping, as the CLI's diy
// backend does.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("stacktest: %w", err)
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// NewPassphraseState returns a new passphrase secrets provider salt state,
// "v1:<base64 salt>:<the ciphertext of "pulumi">" as the CLI's passphrase
// secrets manager makes it (the deployment holds it as {"salt": state}),
// and the SDK crypter of passphrase under it.
func NewPassphraseState(passphrase string) (state string, crypter config.Crypter, err error) {
	salt := make([]byte, 8)
	if _, err := cryptorand.Read(salt); err != nil {
		return "", nil, err
	}
	crypter = config.NewSymmetricCrypterFromPassphrase(passphrase, salt)
	check, err := crypter.EncryptValue(context.Background(), "pulumi")
	if err != nil {
		return "", nil, err
	}
	return "v1:" + base64.StdEncoding.EncodeToString(salt) + ":" + check, crypter, nil
}
