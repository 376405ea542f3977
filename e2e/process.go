package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PID returns the process id of the escfs serving e: the child of this
// process whose command line ends with e's mount point.
func (e *Escfs) PID() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find the escfs of %s: %w", e.Mnt, err)
	}
	self := os.Getpid()
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || parentPID(pid) != self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		if len(args) > 1 && args[len(args)-1] == e.Mnt && contains(args, "mount") {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no escfs child of pid %d serves %s", self, e.Mnt)
}

// parentPID returns the parent of pid from /proc/PID/stat, 0 if unknown.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Alive reports whether e's escfs process is still running.
func (e *Escfs) Alive() bool {
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for e's escfs process to exit and returns whether it
// exited and its exit error (nil for exit status 0).
func (e *Escfs) Wait(d time.Duration) (exited bool, err error) {
	select {
	case <-e.done:
		return true, e.err
	case <-time.After(d):
		return false, nil
	}
}
