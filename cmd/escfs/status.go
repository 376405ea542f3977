package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/fs"
	"github.com/escfs/escfs/internal/bounded"
)

func init() { commands = append(commands, newStatusCommand) }

// stateTimeout is the state shown for an environment whose status file
// did not answer in time (a stopped or hung escfs).
const stateTimeout eval.State = "timeout"

// maxErrorWidth bounds the LAST ERROR column.
const maxErrorWidth = 80

// maxStatusDepth bounds the walk of a mount: projects hold environments,
// nothing is deeper.
const maxStatusDepth = 4

// unhealthy are the states that make escfs status exit 1.
var unhealthy = []eval.State{eval.StateError, eval.StateStale, eval.StateExpired, stateTimeout}

// envStatus is one environment's status file: raw as the mount served it
// (for --json) and decoded (for the table).
type envStatus struct {
	raw json.RawMessage
	st  eval.Status
}

func newStatusCommand(_ *globalFlags) *cobra.Command {
	var (
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status MOUNTPOINT",
		Short: "Show the state of every environment of a running mount, without evaluating any",
		Long: `Show one line per environment of a running escfs mount, read from its status files:
its state (unevaluated, evaluating, ok, stale, expired, error), when it was evaluated, when
its credentials expire and are renewed, and the first line of its last error. Nothing is
evaluated: only the mount's directories and status files are read, never env, dotenv,
values.json or files.

Exit status 1 if any environment is in error, stale (a renewal failed) or expired, or did
not answer within --timeout: it fits a monitoring check. MOUNTPOINT must be an escfs mount
point; a stopped or hung escfs makes the command fail after --timeout, never hang.`,
		Example: `  escfs status /tmp/escfs
  escfs status --json /tmp/escfs | jq -r '.[] | select(.state != "ok") | .name'
  escfs status /tmp/escfs >/dev/null || echo "an environment needs attention"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return fmt.Errorf("--timeout must be positive, not %s", timeout)
			}
			mnt, err := fs.MountPoint(args[0])
			if err != nil {
				return err
			}
			statuses, err := readStatuses(mnt, time.Now().Add(timeout))
			if err != nil {
				return err
			}
			if err := writeStatuses(cmd.OutOrStdout(), statuses, asJSON, time.Now()); err != nil {
				return err
			}
			return statusExit(cmd.ErrOrStderr(), statuses)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status files as a JSON array")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the mount to answer, in all")
	return cmd
}

// readBounded runs fn and waits for it until deadline: a read from a stopped
// or hung FUSE server never returns, and the command must not hang with it.
func readBounded[T any](deadline time.Time, fn func() (T, error)) (T, error) {
	v, err := bounded.Call(time.Until(deadline), fn)
	if errors.Is(err, bounded.ErrTimeout) {
		err = errTimeout
	}
	return v, err
}

// errTimeout is a read of the mount that did not answer in time.
var errTimeout = errors.New("no answer from the mount in time (is its escfs stopped or hung? escfs unmount MOUNTPOINT)")

// readStatuses walks the mount and reads the status file of every
// environment, sorted by name. A directory is an environment if it holds a
// regular file "status"; every other directory (the root, a project) is
// walked. Nothing else is opened, so nothing is evaluated.
func readStatuses(mnt string, deadline time.Time) ([]envStatus, error) {
	var out []envStatus
	if err := walkStatuses(mnt, "", deadline, 0, &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].st.Name < out[j].st.Name })
	return out, nil
}

// walkStatuses adds the status of the environment at rel (if it is one)
// and of those below it to out.
func walkStatuses(mnt, rel string, deadline time.Time, depth int, out *[]envStatus) error {
	dir := filepath.Join(mnt, filepath.FromSlash(rel))
	entries, err := readBounded(deadline, func() ([]os.DirEntry, error) { return os.ReadDir(dir) })
	switch {
	case errors.Is(err, errTimeout) && rel != "":
		*out = append(*out, failedStatus(rel, err))
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", dir, err)
	}
	isEnv := slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "status" && e.Type().IsRegular() })
	if isEnv {
		*out = append(*out, readStatus(filepath.Join(dir, "status"), rel, deadline))
	}
	if depth >= maxStatusDepth {
		return nil
	}
	for _, e := range entries {
		if !e.IsDir() || (isEnv && e.Name() == "files") {
			continue
		}
		if err := walkStatuses(mnt, path.Join(rel, e.Name()), deadline, depth+1, out); err != nil {
			return err
		}
	}
	return nil
}

// readStatus reads and decodes one status file; a failure is a status of
// its own, so that one bad environment does not hide the others.
func readStatus(file, rel string, deadline time.Time) envStatus {
	b, err := readBounded(deadline, func() ([]byte, error) { return os.ReadFile(file) })
	if err != nil {
		return failedStatus(rel, err)
	}
	var st eval.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return failedStatus(rel, fmt.Errorf("%s: %w", file, err))
	}
	if st.Name == "" {
		st.Name = rel
	}
	return envStatus{raw: json.RawMessage(b), st: st}
}

// failedStatus is the status of an environment whose status file could not
// be read: "timeout" if it did not answer, else "error".
func failedStatus(rel string, err error) envStatus {
	st := eval.Status{Name: rel, State: eval.StateError, Error: err.Error()}
	if errors.Is(err, errTimeout) {
		st.State = stateTimeout
	}
	if errors.Is(err, iofs.ErrNotExist) {
		st.Error = "vanished while reading"
	}
	raw, _ := json.Marshal(st)
	return envStatus{raw: raw, st: st}
}

// writeStatuses prints the statuses as a table, or as a JSON array.
func writeStatuses(w io.Writer, statuses []envStatus, asJSON bool, now time.Time) error {
	if asJSON {
		raws := make([]json.RawMessage, len(statuses))
		for i, s := range statuses {
			raws[i] = s.raw
		}
		b, err := json.MarshalIndent(raws, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ENVIRONMENT\tSTATE\tEVALUATED\tEXPIRES IN\tREFRESH IN\tLAST ERROR")
	for _, s := range statuses {
		st := s.st
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(st.Name, maxErrorWidth), oneLine(string(st.State), 20),
			ago(st.EvaluatedAt, now), until(st.ExpiresAt, now), until(st.RefreshAt, now), lastError(st))
	}
	return tw.Flush()
}

// statusExit returns an exit status 1 error, after naming them on w, if
// any environment is unhealthy.
func statusExit(w io.Writer, statuses []envStatus) error {
	var bad []string
	for _, s := range statuses {
		if slices.Contains(unhealthy, s.st.State) {
			bad = append(bad, fmt.Sprintf("%s (%s)", oneLine(s.st.Name, maxErrorWidth), oneLine(string(s.st.State), 20)))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	fmt.Fprintf(w, "escfs: %d of %d environments need attention: %s\n", len(bad), len(statuses), strings.Join(bad, ", "))
	return &exitError{code: 1}
}

// ago is how long before now t was, "-" if unknown.
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return roundDuration(now.Sub(*t)) + " ago"
}

// until is how long after now t is ("3s ago" if it has passed), "-" if
// unknown.
func until(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	if d := t.Sub(now); d < 0 {
		return roundDuration(-d) + " ago"
	}
	return roundDuration(t.Sub(now))
}

// roundDuration prints d to the second.
func roundDuration(d time.Duration) string { return d.Round(time.Second).String() }

// lastError is the first line of the status's lastError, else of its
// error, cut to maxErrorWidth; "-" if there is none.
func lastError(st eval.Status) string {
	msg := st.LastError
	if msg == "" {
		msg = st.Error
	}
	if msg == "" {
		return "-"
	}
	msg, _, _ = strings.Cut(msg, "\n")
	return oneLine(msg, maxErrorWidth)
}

// oneLine makes s safe for one table cell: control characters (a tab
// would break the columns, an escape sequence would reach the terminal)
// become '?', and it is cut to width runes with "…".
func oneLine(s string, width int) string {
	r := []rune(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s))
	if len(r) > width {
		return string(r[:width-1]) + "…"
	}
	return string(r)
}
