package pulumistacks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
)

// The variables the Pulumi CLI reads the passphrase of passphrase secrets
// providers from.
const (
	PassphraseEnv     = "PULUMI_CONFIG_PASSPHRASE"
	PassphraseFileEnv = "PULUMI_CONFIG_PASSPHRASE_FILE"
)

// PassphraseProvider is the type of the passphrase secrets provider in a
// deployment's secrets_providers.
const PassphraseProvider = "passphrase"

// ErrIncorrectPassphrase is the error of a passphrase that does not open a
// stack's secrets.
var ErrIncorrectPassphrase = errors.New("incorrect passphrase (set " + PassphraseEnv + " or " + PassphraseFileEnv + " to the stack's passphrase)")

// errNoPassphrase is the error when neither variable is set.
var errNoPassphrase = errors.New("no passphrase: set " + PassphraseEnv + " or " + PassphraseFileEnv)

// passphraseState is the state of a passphrase secrets provider.
type passphraseState struct {
	Salt string `json:"salt"`
}

// decrypter returns the decrypter of dep's secrets provider.
func decrypter(dep *apitype.DeploymentV3) (config.Decrypter, error) {
	sp := dep.SecretsProviders
	if sp == nil {
		return nil, errors.New("the deployment names no secrets provider")
	}
	if sp.Type != PassphraseProvider {
		return nil, fmt.Errorf("the stack's secrets provider is %q; escfs decrypts only %q secrets so far", sp.Type, PassphraseProvider)
	}
	var state passphraseState
	if err := json.Unmarshal(sp.State, &state); err != nil || state.Salt == "" {
		return nil, errors.New("malformed passphrase secrets provider state")
	}
	phrase, err := readPassphrase()
	if err != nil {
		return nil, err
	}
	return crypter(phrase, state.Salt)
}

// readPassphrase reads the passphrase as the Pulumi CLI does: the value of
// PULUMI_CONFIG_PASSPHRASE if set (even empty), else the contents of the
// file PULUMI_CONFIG_PASSPHRASE_FILE names, trimmed.
func readPassphrase() (string, error) {
	if phrase, ok := os.LookupEnv(PassphraseEnv); ok {
		return phrase, nil
	}
	if file := os.Getenv(PassphraseFileEnv); file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", PassphraseFileEnv, err)
		}
		b, err := os.ReadFile(abs)
		if err != nil {
			return "", fmt.Errorf("%s: cannot read %s: %w", PassphraseFileEnv, abs, errors.Unwrap(err))
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", errNoPassphrase
}

// crypterFromState builds the SDK's passphrase crypter from a salt state,
// "v1:<base64 salt>:<the ciphertext of "pulumi">", and checks the
// passphrase against the ciphertext, as the CLI's passphrase secrets
// manager does.
func crypterFromState(phrase, state string) (config.Crypter, error) {
	parts := strings.SplitN(state, ":", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed passphrase salt state")
	}
	if parts[0] != "v1" {
		return nil, fmt.Errorf("unknown passphrase salt state version %q", parts[0])
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("malformed passphrase salt state: bad salt")
	}
	crypter := config.NewSymmetricCrypterFromPassphrase(phrase, salt)
	check, err := crypter.DecryptValue(context.Background(), parts[2])
	if err != nil || check != "pulumi" {
		return nil, ErrIncorrectPassphrase
	}
	return crypter, nil
}
