package main

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/runner"
)

// nonDumpable marks this process non-dumpable, as the mount does: no core
// dump holds its memory, and processes of the same uid can neither ptrace it
// nor read its /proc/PID/mem or /proc/PID/environ (which hold the
// environment's secrets while open or run works). A failure is a warning on
// stderr: it does not stop the command.
func nonDumpable(stderr io.Writer) {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(stderr, "escfs: warning: prctl(PR_SET_DUMPABLE, 0): %v\n", err)
	}
}

// removeDeadRuns removes the files directories that killed escfs run
// processes left behind (see runner.RemoveDeadRuns); every escfs start does
// it. A failure is a warning on stderr.
func removeDeadRuns(stderr io.Writer) {
	if _, err := runner.RemoveDeadRuns(); err != nil {
		fmt.Fprintf(stderr, "escfs: warning: %v\n", err)
	}
}
