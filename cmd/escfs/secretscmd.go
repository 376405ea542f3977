package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/rewrite"
	"github.com/escfs/escfs/secrets"
)

func init() { commands = append(commands, newSecretsCommand) }

// keyCacheTTL is how long unwrapped data keys stay in memory (--key-cache-ttl).
var keyCacheTTL = secrets.DefaultCacheTTL

var (
	keyringOnce sync.Once
	keyring     *secrets.Keyring
)

// keys returns this process's keyring: age identities from
// $ESCFS_AGE_IDENTITIES or the default identities file, AWS KMS through the
// default credential chain, data keys cached for keyCacheTTL.
func keys() *secrets.Keyring {
	keyringOnce.Do(func() {
		keyring = secrets.NewKeyring(secrets.KeyringOptions{CacheTTL: keyCacheTTL})
		if path, err := keyring.IdentitiesFile(); err == nil {
			if w := secrets.IdentitiesFileWarning(path); w != "" {
				fmt.Fprintln(os.Stderr, "escfs: warning: "+w)
			}
		}
	})
	return keyring
}

// newEditor returns an editor of the definitions directory's files.
func (g *globalFlags) newEditor() (*rewrite.Editor, error) {
	tree, err := g.scanTree()
	if err != nil {
		return nil, err
	}
	rules, err := secrets.LoadRules(tree.Root)
	if err != nil {
		return nil, err
	}
	return &rewrite.Editor{Tree: tree, Rules: rules, Keys: keys(), Evaluator: newEvaluator()}, nil
}

func newSecretsCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Keys and encryption of the fn::secret values in the definitions (secrets in git)",
		Long: `Definitions can keep every fn::secret value encrypted, so a team can keep them in git:
DIR/.escfs.yaml says whom each environment's secrets are encrypted to (age recipients,
AWS KMS keys; the first rule whose pattern matches the environment's project/env name),
and whoever holds one of those keys decrypts, in memory, when escfs evaluates.

  escfs secrets keygen            a new age identity; prints the recipient to put in a rule
  escfs secrets encrypt [ENV...]  encrypt every plaintext fn::secret, in place
  escfs secrets rotate [ENV...]   re-encrypt with a new data key to the rule's recipients now

age identities are read from $ESCFS_AGE_IDENTITIES, else ~/.config/escfs/age/identities.txt;
AWS KMS keys are used through the standard AWS configuration (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL_KMS, ...).`,
	}
	cmd.AddCommand(newKeygenCommand(), newEncryptCommand(g, false), newEncryptCommand(g, true))
	return cmd
}

func newKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen [FILE]",
		Short: "Create an age identity and print its recipient",
		Long: `Create a new age X25519 identity and add it to FILE (default: $ESCFS_AGE_IDENTITIES,
else ~/.config/escfs/age/identities.txt), created 0600 in a 0700 directory; an existing
file keeps its identities (old secrets stay readable). The recipient (age1...) goes to
stdout: put it in a rule of .escfs.yaml. The identity itself is never printed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ""
			if len(args) == 1 {
				path = args[0]
			} else {
				p, err := secrets.DefaultIdentitiesPath()
				if err != nil {
					return err
				}
				path = p
			}
			recipient, err := secrets.Keygen(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "added an identity to %s; its recipient:\n", path)
			fmt.Fprintln(cmd.OutOrStdout(), recipient)
			return nil
		},
	}
}

// newEncryptCommand returns "secrets encrypt", or "secrets rotate" if rotate.
func newEncryptCommand(g *globalFlags, rotate bool) *cobra.Command {
	use, short, long := "encrypt [ENV...]", "Encrypt every plaintext fn::secret in place",
		`Encrypt every plaintext fn::secret value of the named environments (default: all) to
the recipients of the first rule of .escfs.yaml that covers each, each bound to its
environment and property path. One new data key serves each write (a data key found in
a file is never reused: anyone who can write the file could have chosen it); only the
encrypted values change. Recipients that none of a file's ciphertexts has are named and
need confirmation (or --yes). Files are replaced atomically.`
	if rotate {
		use, short, long = "rotate [ENV...]", "Re-encrypt every fn::secret to the current rules, with a new data key",
			`Re-encrypt every encrypted fn::secret value of the named environments (default: all)
with a new data key, to the recipients the rules name now: after a recipient is removed
from a rule, it cannot decrypt a rotated file (it may still have the old one in git's
history: rotate the secrets themselves too). Needs a key that decrypts the current values.

Every value is bound to its environment and property path: a ciphertext bound elsewhere
(copied or swapped in) is refused and the file is left as it is; --rebind binds such
values where they are now, for values you moved yourself (a renamed key or environment).
Version-1 ciphertexts (bound to nothing, from escfs before bindings) are upgraded.
Recipients that none of a file's ciphertexts has are named and need confirmation (or
--yes).`
	}
	var yes, rebind bool
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long,
		ValidArgsFunction: completeEnvs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			ed, err := g.newEditor()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				for _, d := range ed.Tree.Definitions() {
					args = append(args, d.Name.Short())
				}
			}
			op, verb := ed.Encrypt, "encrypted"
			if rotate {
				verb = "re-encrypted"
				op = func(ctx context.Context, name string) (rewrite.Change, error) { return ed.Rotate(ctx, name, rebind) }
			}
			return forEach(cmd.Context(), cmd.ErrOrStderr(), args, verb, yes, op)
		},
	}
	yesFlag(cmd, &yes)
	if rotate {
		cmd.Flags().BoolVar(&rebind, "rebind", false, "bind ciphertexts that belong to another environment or path to where they are now (values you moved yourself)")
	}
	return cmd
}

// forEach applies op to each environment and writes the result, going on
// after a failure; it fails if any did.
func forEach(ctx context.Context, stderr io.Writer, names []string, verb string, yes bool, op func(context.Context, string) (rewrite.Change, error)) error {
	failed := 0
	for _, name := range names {
		c, err := op(ctx, name)
		if err == nil {
			err = confirmRecipients(stderr, nil, yes, name, c)
		}
		if err == nil {
			err = c.Write()
		}
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(stderr, "FAIL %s: %v\n", name, err)
		case c.Changed():
			fmt.Fprintf(stderr, "%s %s: %s in %s%s%s\n", verb, name, plural(c.Count, "secret"), c.Path, fallbackNote(c), bindNote(c))
		default:
			fmt.Fprintf(stderr, "ok  %s: nothing to do\n", name)
		}
	}
	if failed > 0 {
		return &exitError{1}
	}
	return nil
}

// bindNote says how many values a rotation bound for the first time or
// bound anew.
func bindNote(c rewrite.Change) string {
	var parts []string
	if c.Upgraded > 0 {
		parts = append(parts, plural(c.Upgraded, "version-1 value")+" now bound to its place")
	}
	if c.Rebound > 0 {
		parts = append(parts, plural(c.Rebound, "value")+" re-bound here (--rebind)")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// fallbackNote says when a file had to be re-encoded rather than spliced.
func fallbackNote(c rewrite.Change) string {
	if c.Fallback {
		return " (re-encoded: its layout could not be kept, comments and order were)"
	}
	return ""
}

// keyCacheFlag adds --key-cache-ttl to a command that decrypts.
func keyCacheFlag(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&keyCacheTTL, "key-cache-ttl", secrets.DefaultCacheTTL, "how long an unwrapped data key stays in memory (one KMS call per data key and period)")
}

// checkEdit evaluates an edited definition without opening providers.
func checkEdit(ctx context.Context, ed *rewrite.Editor, name string, src []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := ed.Evaluator.Evaluate(ctx, ed.Tree, eval.Request{Name: name, Definition: src, Check: true})
	return err
}
