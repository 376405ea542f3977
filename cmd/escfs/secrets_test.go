package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
)

// keygen creates an age identity file and returns its recipient.
func keygen(t *testing.T, path string) string {
	t.Helper()
	r := escfsExec(t, nil, "", "secrets", "keygen", path)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "age1") {
		t.Fatalf("secrets keygen: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identities file %s: %v, mode %v", path, err, fi.Mode())
	}
	if strings.Contains(r.stdout+r.stderr, "AGE-SECRET-KEY") {
		t.Fatalf("keygen printed the identity")
	}
	return strings.TrimSpace(r.stdout)
}

// ageRules writes DIR/.escfs.yaml with one catch-all rule to recipients.
func ageRules(t *testing.T, dir string, recipients ...string) {
	t.Helper()
	rules := fmt.Sprintf("secrets:\n  - environments: \"*\"\n    age: [%s]\n", strings.Join(recipients, ", "))
	if err := os.WriteFile(filepath.Join(dir, ".escfs.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsJourney is the path of a team keeping its secrets in git:
// keygen, set --secret, a commit-shaped file without plaintext, a mount
// that sources the value, an edit by a scripted $EDITOR that shows on the
// next read and keeps the other ciphertext byte for byte, and a rotation
// to a second recipient that the first identity can no longer read.
func TestSecretsJourney(t *testing.T) {
	needMount(t)
	keys := t.TempDir()
	id1, id2 := filepath.Join(keys, "one.txt"), filepath.Join(keys, "two.txt")
	r1 := keygen(t, id1)
	r2 := keygen(t, id2)
	dir := filetree.Write(t, "", map[string]string{
		"app.yaml": "# the app\nvalues:\n  db:\n    user: app # who\n  environmentVariables:\n    DB_USER: ${db.user}\n    DB_PASSWORD: ${db.password}\n    API_KEY: ${api.key}\n",
	})
	ageRules(t, dir, r1)
	as1 := []string{"ESCFS_AGE_IDENTITIES=" + id1}
	const pw, key, pw2 = "s3cr3t-pass-word-1", "api-key-value-42", "n3w-pass-word-2"

	for path, value := range map[string]string{"db.password": pw, "api.key": key} {
		if r := escfsExec(t, as1, value, "--dir", dir, "set", "app", path, "-", "--secret"); r.code != 0 {
			t.Fatalf("set %s --secret: exit %d: %s", path, r.code, r.stderr)
		}
	}
	file := filepath.Join(dir, "app.yaml")
	src := readFile(t, file)
	for _, plain := range []string{pw, key} {
		if strings.Contains(src, plain) {
			t.Fatalf("the plaintext %q is in the committed file:\n%s", plain, src)
		}
	}
	if !strings.HasPrefix(src, "# the app\nvalues:\n  db:\n    user: app # who\n") || strings.Count(src, "ciphertext:") != 2 {
		t.Fatalf("set did not keep the file or did not encrypt both:\n%s", src)
	}
	apiLine := lineWith(t, src, "key:")

	t.Setenv("ESCFS_AGE_IDENTITIES", id1) // for the mount below
	mnt := t.TempDir()
	p := escfstest.MountAt(t, escfstest.Options{}, mnt, "--dir", dir, "mount")
	t.Cleanup(func() { p.Signal(t, syscall.SIGTERM) })
	p.WaitReadable(t, filepath.Join(mnt, "app", "env"))
	source := func() string {
		out, err := exec.Command("bash", "-c", `source "$1/app/env" && printf '%s|%s' "$DB_PASSWORD" "$API_KEY"`, "bash", mnt).CombinedOutput()
		if err != nil {
			t.Fatalf("source env: %v: %s", err, out)
		}
		return string(out)
	}
	if got := source(); got != pw+"|"+key {
		t.Fatalf("sourced %q, want %q", got, pw+"|"+key)
	}

	// The scripted editor checks where its buffer is, then changes one value.
	probe := filepath.Join(t.TempDir(), "probe")
	editor := writeScript(t, fmt.Sprintf(`stat -f -c %%T "$1" > %[1]s; stat -c %%a "$1" >> %[1]s; sed -i 's/%[2]s/%[3]s/' "$1"`, probe, pw, pw2))
	r := escfsExec(t, append(as1, "EDITOR="+editor, "VISUAL="), "", "--dir", dir, "edit", "app")
	if r.code != 0 {
		t.Fatalf("edit: exit %d: %s", r.code, r.stderr)
	}
	if got := readFile(t, probe); got != "tmpfs\n600\n" {
		t.Errorf("the edit buffer was on %q (want tmpfs, mode 600)", got)
	}
	edited := readFile(t, file)
	if strings.Contains(edited, pw2) || strings.Contains(edited, pw) {
		t.Fatalf("plaintext in the file after edit:\n%s", edited)
	}
	if lineWith(t, edited, "key:") != apiLine {
		t.Errorf("the unchanged secret's ciphertext changed:\n%s\nwas\n%s", lineWith(t, edited, "key:"), apiLine)
	}
	deadline := time.Now().Add(10 * time.Second)
	for source() != pw2+"|"+key {
		if time.Now().After(deadline) {
			t.Fatalf("the mount still serves %q 10s after the edit", source())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Rotate to the second recipient only.
	ageRules(t, dir, r2)
	if r := escfsExec(t, as1, "", "--dir", dir, "secrets", "rotate", "--yes", "app"); r.code != 0 {
		t.Fatalf("rotate: exit %d: %s", r.code, r.stderr)
	}
	if r := escfsExec(t, as1, "", "--dir", dir, "open", "app"); r.code == 0 || !strings.Contains(r.stderr, r2) || !strings.Contains(r.stderr, "app.yaml:") {
		t.Errorf("the first identity after rotation: exit %d, stderr %q; want a located failure naming %s", r.code, r.stderr, r2)
	} else if strings.Contains(r.stderr, pw2) {
		t.Errorf("a failure printed the secret")
	}
	r = escfsExec(t, []string{"ESCFS_AGE_IDENTITIES=" + id2}, "", "--dir", dir, "open", "app", "-f", "shell")
	if r.code != 0 || !strings.Contains(r.stdout, pw2) || !strings.Contains(r.stdout, key) {
		t.Errorf("the second identity after rotation: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestEditInvalid checks that an invalid edit writes nothing: at the end of
// input it is abandoned; after Enter the editor opens again on the edit,
// and a fixed edit is saved.
func TestEditInvalid(t *testing.T) {
	keys := t.TempDir()
	id := filepath.Join(keys, "id.txt")
	r1 := keygen(t, id)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": "values:\n  a: 1\n"})
	ageRules(t, dir, r1)
	env := []string{"ESCFS_AGE_IDENTITIES=" + id, "VISUAL="}
	if r := escfsExec(t, env, "hunter2-secret", "--dir", dir, "set", "app", "pw", "-", "--secret"); r.code != 0 {
		t.Fatalf("set: %s", r.stderr)
	}
	before := readFile(t, filepath.Join(dir, "app.yaml"))
	count := filepath.Join(t.TempDir(), "count")
	// First run: break the YAML; second run: reference a missing value;
	// third: a valid change.
	editor := writeScript(t, fmt.Sprintf(`echo x >> %[1]s
case $(wc -l < %[1]s) in
1) printf '  b: [\n' >> "$1" ;;
2) sed -i 's/  b: \[/  b: ${nowhere.x}/' "$1" ;;
*) sed -i 's/  b: .*/  b: 2/' "$1" ;;
esac`, count))
	env = append(env, "EDITOR="+editor)

	r := escfsExec(t, env, "", "--dir", dir, "edit", "app")
	if r.code == 0 || !strings.Contains(r.stderr, "app.yaml:") || !strings.Contains(r.stderr, "abandoned") {
		t.Fatalf("invalid edit at end of input: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := readFile(t, filepath.Join(dir, "app.yaml")); got != before {
		t.Fatalf("an abandoned edit wrote:\n%s", got)
	}
	os.Remove(count)
	r = escfsExec(t, env, "\n\n", "--dir", dir, "edit", "app")
	if r.code != 0 {
		t.Fatalf("edit fixed on the third try: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := strings.Count(readFile(t, count), "x"); n != 3 {
		t.Errorf("the editor ran %d times, want 3", n)
	}
	if !strings.Contains(r.stderr, "nowhere") {
		t.Errorf("the evaluation error was not shown: %q", r.stderr)
	}
	after := readFile(t, filepath.Join(dir, "app.yaml"))
	if !strings.Contains(after, "b: 2") || lineWith(t, after, "pw:") != lineWith(t, before, "pw:") || strings.Contains(after, "hunter2") {
		t.Errorf("saved edit:\n%s\nbefore:\n%s", after, before)
	}
}

// TestEditSignals checks that SIGTERM while the editor runs, and SIGINT at
// the retry prompt, remove the plaintext buffer and write nothing.
func TestEditSignals(t *testing.T) {
	keys := t.TempDir()
	id := filepath.Join(keys, "id.txt")
	r1 := keygen(t, id)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": "values:\n  a: 1\n"})
	ageRules(t, dir, r1)
	xdg := testutil.MemTempDir(t)
	env := []string{"ESCFS_AGE_IDENTITIES=" + id, "VISUAL=", "XDG_RUNTIME_DIR=" + xdg}
	if r := escfsExec(t, env, "hunter2-secret", "--dir", dir, "set", "app", "pw", "-", "--secret"); r.code != 0 {
		t.Fatalf("set: %s", r.stderr)
	}
	before := readFile(t, filepath.Join(dir, "app.yaml"))
	ready := filepath.Join(t.TempDir(), "ready")

	for _, tc := range []struct {
		name   string
		editor string
		sig    syscall.Signal
	}{
		{"SIGTERM in the editor", fmt.Sprintf(`echo "$1" > %s; exec sleep 30`, ready), syscall.SIGTERM},
		{"SIGINT at the prompt", fmt.Sprintf(`printf 'values: [\n' > "$1"; echo "$1" > %s`, ready), syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(ready)
			e := startEdit(t, dir, env, writeScript(t, tc.editor), ready)
			buf := e.report
			if !strings.HasPrefix(buf, xdg) {
				t.Fatalf("buffer %s is not in XDG_RUNTIME_DIR %s", buf, xdg)
			}
			if tc.sig == syscall.SIGINT { // wait for the prompt
				for deadline := time.Now().Add(15 * time.Second); !strings.Contains(e.Log(), "Press Enter"); time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("no prompt; stderr %s", e.Log())
					}
				}
			}
			e.Cmd.Process.Signal(tc.sig)
			select {
			case <-e.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("escfs edit still runs 15s after %v", tc.sig)
			}
			if code := e.Cmd.ProcessState.ExitCode(); code != 128+int(tc.sig) {
				t.Errorf("exit %d, want %d", code, 128+int(tc.sig))
			}
			if _, err := os.Stat(filepath.Dir(buf)); !os.IsNotExist(err) {
				t.Errorf("the plaintext buffer's directory is left: %v", err)
			}
			if got := readFile(t, filepath.Join(dir, "app.yaml")); got != before {
				t.Errorf("an interrupted edit wrote:\n%s", got)
			}
		})
	}
}

// TestEditKilled: a kill -9 of escfs edit while the editor runs leaves
// the plaintext buffer behind (nothing can remove it at that moment), the
// editor dies with escfs (PDEATHSIG, so nothing holds the plaintext open),
// and the next escfs to start, whatever the command, removes the buffer and
// its run directory; the definition is untouched.
func TestEditKilled(t *testing.T) {
	keys := t.TempDir()
	id := filepath.Join(keys, "id.txt")
	r1 := keygen(t, id)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": "# the app\nvalues:\n  a: 1\n"})
	ageRules(t, dir, r1)
	env := []string{"ESCFS_AGE_IDENTITIES=" + id, "VISUAL="}
	const secret = "hunter2-killed-secret"
	if r := escfsExec(t, env, secret, "--dir", dir, "set", "app", "pw", "-", "--secret"); r.code != 0 {
		t.Fatalf("set: %s", r.stderr)
	}
	file := filepath.Join(dir, "app.yaml")
	before := readFile(t, file)
	if strings.Contains(before, secret) {
		t.Fatalf("plaintext in the file:\n%s", before)
	}

	xdg := testutil.MemTempDir(t)
	env = append(env, "XDG_RUNTIME_DIR="+xdg)
	// The editor says who it is and where its buffer is (written
	// whole, then renamed), then blocks.
	ready := filepath.Join(t.TempDir(), "ready")
	editor := writeScript(t, fmt.Sprintf(`printf '%%s %%s\n' "$$" "$1" > %[1]s.tmp && mv %[1]s.tmp %[1]s; exec sleep 60`, ready))
	e := startEdit(t, dir, env, editor, ready)
	line := e.report
	pidText, buf, ok := strings.Cut(line, " ")
	editorPID, err := strconv.Atoi(pidText)
	if !ok || err != nil {
		t.Fatalf("editor's report %q", line)
	}
	t.Cleanup(func() { syscall.Kill(editorPID, syscall.SIGKILL) })
	runDir := filepath.Dir(buf)

	// The control: the editor is escfs's child, and the plaintext
	// really is in a 0700 run directory on the tmpfs.
	if ppid := escfstest.ParentPID(editorPID); ppid != e.PID() {
		t.Fatalf("the editor's parent is %d, want escfs edit (%d)", ppid, e.PID())
	}
	if filepath.Dir(runDir) != xdg || !strings.HasPrefix(filepath.Base(runDir), "escfs-run-") {
		t.Fatalf("buffer %s is not in a run directory of $XDG_RUNTIME_DIR %s", buf, xdg)
	}
	if fi, err := os.Stat(runDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run directory %s: %v, %v; want 0700", runDir, fi, err)
	}
	if got := readFile(t, buf); !strings.Contains(got, "fn::secret: "+secret) {
		t.Fatalf("the buffer does not show the secret (else this test proves nothing):\n%s", got)
	}

	if err := e.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Done(): // reaped: no zombie that would still look alive
	case <-time.After(10 * time.Second):
		t.Fatal("escfs edit did not end within 10s of SIGKILL")
	}
	// The editor dies with escfs (PDEATHSIG): left running, it would
	// hold the plaintext open after the buffer is removed.
	if !processGone(editorPID) {
		t.Fatalf("the editor (pid %d) still runs 10s after escfs edit was SIGKILLed", editorPID)
	}
	if got, err := os.ReadFile(buf); err != nil || !strings.Contains(string(got), secret) {
		t.Fatalf("right after the kill: buffer %v; want the plaintext left behind (else this test proves nothing)", err)
	}

	if r := escfsExec(t, env, "", "--dir", dir, "ls"); r.code != 0 {
		t.Fatalf("escfs ls: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(buf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the plaintext buffer after the next escfs: %v, want it removed", err)
	}
	if _, err := os.Stat(runDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run directory after the next escfs: %v, want it removed", err)
	}
	if entries, err := os.ReadDir(xdg); err != nil || len(entries) != 0 {
		t.Errorf("left in $XDG_RUNTIME_DIR: %v, %v", entries, err)
	}
	if got := readFile(t, file); got != before {
		t.Errorf("a killed edit changed the definition:\n%s\nwas:\n%s", got, before)
	}
}

// editRun is an escfs edit started by startEdit.
type editRun struct {
	*escfstest.Proc
	report string // what the editor wrote to its ready file
}

// startEdit starts escfs --dir dir edit app with env and $EDITOR editor,
// its stdin an open pipe (a prompt waits), and waits up to 15 seconds for
// the editor to write a line to ready (its buffer's path, say). The process
// ends with the test.
func startEdit(t *testing.T, dir string, env []string, editor, ready string) editRun {
	t.Helper()
	os.Remove(ready)
	stdin, w, err := os.Pipe() // a file: the child reads it directly, nothing copies
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); stdin.Close() })
	p := escfstest.Start(t, escfstest.Options{Env: append(append(os.Environ(), env...), "EDITOR="+editor), Stdin: stdin}, "--dir", dir, "edit", "app")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return editRun{Proc: p, report: strings.TrimSpace(string(b))}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the editor did not start; log %s", p.Log())
		}
	}
}

// TestSetRefusesBreaking checks that set refuses a change that breaks a
// working environment, and names the problem.
func TestSetRefusesBreaking(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{"app.yaml": "values:\n  a: 1\n  b: ${a}\n"})
	r := escfsExec(t, nil, "", "--dir", dir, "set", "app", "b", "${nowhere.x}")
	if r.code == 0 || !strings.Contains(r.stderr, "not written") {
		t.Fatalf("breaking set: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := readFile(t, filepath.Join(dir, "app.yaml")); got != "values:\n  a: 1\n  b: ${a}\n" {
		t.Fatalf("a refused set wrote:\n%s", got)
	}
	r = escfsExec(t, nil, "", "--dir", dir, "set", "app", "c.d", "[1, 2]")
	if r.code != 0 {
		t.Fatalf("set c.d: exit %d: %s", r.code, r.stderr)
	}
	r = escfsExec(t, nil, "", "--dir", dir, "open", "app")
	if r.code != 0 || !strings.Contains(strings.Join(strings.Fields(r.stdout), ""), `"d":[1,2]`) {
		t.Errorf("after set c.d: %s %s", r.stdout, r.stderr)
	}
	// No rule: a secret has nobody to be encrypted to.
	r = escfsExec(t, nil, "pw-value", "--dir", dir, "set", "app", "pw", "-", "--secret")
	if r.code == 0 || !strings.Contains(r.stderr, ".escfs.yaml") || strings.Contains(r.stderr, "pw-value") {
		t.Errorf("set --secret without a rule: exit %d, stderr %q", r.code, r.stderr)
	}
}

// readFile returns a file's content.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineWith returns the first line of s containing sub.
func lineWith(t *testing.T, s, sub string) string {
	t.Helper()
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	t.Fatalf("no line with %q in:\n%s", sub, s)
	return ""
}

// writeScript writes an executable sh script and returns its path.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
