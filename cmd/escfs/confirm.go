package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/rewrite"
)

// yesFlag adds --yes to a command that encrypts.
func yesFlag(cmd *cobra.Command, yes *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "encrypt to recipients that none of the file's ciphertexts has without asking (after a change of .escfs.yaml you made)")
}

// errNotConfirmed is a write refused because new recipients were not
// confirmed.
var errNotConfirmed = errors.New("not written")

// confirmRecipients names the recipients c would encrypt to that none of
// the file's ciphertexts was encrypted to (a rule that gained them, maybe
// in a commit nobody read), as sops updatekeys does, and asks on the
// terminal; without one, it refuses unless yes. in is where the answer is
// read (nil: standard input, if it is a terminal).
func confirmRecipients(stderr io.Writer, in *bufio.Reader, yes bool, name string, c rewrite.Change) error {
	if len(c.Added) == 0 || !c.Changed() {
		return nil
	}
	fmt.Fprintf(stderr, "%s: the new ciphertexts of %s would be encrypted to recipients that none of its ciphertexts has now:\n", name, c.Path)
	for _, r := range c.Added {
		fmt.Fprintf(stderr, "  + %s\n", r)
	}
	fmt.Fprintln(stderr, "  (the rule in .escfs.yaml names them: check who added them, and why)")
	if yes {
		return nil
	}
	if in == nil {
		if !isTerminal(os.Stdin) {
			return fmt.Errorf("%s: %w: new recipients need confirmation; pass --yes if that change to the rules is yours", name, errNotConfirmed)
		}
		in = bufio.NewReader(os.Stdin)
	}
	fmt.Fprint(stderr, "Encrypt to them? [y/N] ")
	line, _ := in.ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
		return nil
	}
	return fmt.Errorf("%s: %w: the new recipients were not confirmed", name, errNotConfirmed)
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
