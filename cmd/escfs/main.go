// Command escfs serves Pulumi ESC environment definitions as files: a FUSE
// mount (escfs mount) and esc-style commands (open, run, check, ls).
package main

import (
	"os"
)

func main() {
	removeDeadRuns(os.Stderr)
	os.Exit(execute(os.Args[1:]))
}
