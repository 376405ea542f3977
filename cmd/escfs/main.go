// Command escfs serves Pulumi ESC environment definitions as files: a FUSE
// mount (escfs mount) and esc-style commands (open, run, check, ls).
package main

import (
	"os"
)

func main() {
	// Every command may hold plaintext (set, edit, check and secrets
	// decrypt; open and run render): none leaves a core dump, and none can
	// be ptraced or have its memory read by other processes of its user.
	nonDumpable(os.Stderr)
	removeDeadRuns(os.Stderr)
	os.Exit(execute(os.Args[1:]))
}
