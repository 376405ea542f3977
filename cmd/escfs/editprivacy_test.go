package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
)

// TestEditLeavesNoTraces edits a secret with the real vim, as a user
// would, with HOME in a fresh directory. The control: the same vim
// command run by hand on a plaintext file leaves ~/.viminfo holding the
// text it searched (the secret). Under escfs edit, vim writes no viminfo,
// swap, undo or backup file anywhere: HOME stays empty and the buffer's
// directory holds nothing after the edit.
func TestEditLeavesNoTraces(t *testing.T) {
	if _, err := exec.LookPath("vim"); err != nil {
		t.Fatal("vim is required for this test (apt-get install vim; .ci/run does)")
	}
	const old, changed = "old-secret-7f3a", "new-secret-9c1b"
	vimArgs := `-c '%s/` + old + `/` + changed + `/' -c wq`

	// The control.
	home := t.TempDir()
	plain := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(plain, []byte("pw: "+old+"\n"), 0o600)
	cmd := exec.Command("sh", "-c", "exec vim "+vimArgs+` "$1"`, "sh", plain)
	cmd.Env = append(os.Environ(), "HOME="+home)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("control vim: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("control vim did not end in 30s")
	}
	if b, err := os.ReadFile(filepath.Join(home, ".viminfo")); err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("control: vim by hand left no ~/.viminfo holding the secret (%v): the test would prove nothing", err)
	}

	// escfs edit.
	keys := t.TempDir()
	id := filepath.Join(keys, "id.txt")
	rcpt := keygen(t, id)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": "values:\n  x: 1\n"})
	ageRules(t, dir, rcpt)
	as := []string{"ESCFS_AGE_IDENTITIES=" + id}
	if r := escfsExec(t, as, old, "--dir", dir, "set", "app", "pw", "-", "--secret"); r.code != 0 {
		t.Fatalf("set: %d: %s", r.code, r.stderr)
	}
	home, xdg := t.TempDir(), testutil.MemTempDir(t)
	r := escfsExec(t, append(as, "HOME="+home, "XDG_RUNTIME_DIR="+xdg, "EDITOR=vim "+vimArgs, "VISUAL="), "", "--dir", dir, "edit", "app")
	if r.code != 0 || !strings.Contains(r.stderr, "saved") {
		t.Fatalf("edit: exit %d: %s", r.code, r.stderr)
	}
	if r := escfsExec(t, as, "", "--dir", dir, "open", "app"); !strings.Contains(r.stdout, changed) {
		t.Fatalf("the edit did not take: %s %s", r.stdout, r.stderr)
	}
	for _, d := range []string{home, xdg} {
		var left []string
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && p != d {
				left = append(left, p)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("after escfs edit with vim, %s holds %v", d, left)
		}
	}
}

// TestIdentitiesFileMode: an identities file others can read is warned
// about by every command that loads keys, and one of mode 0600 is not.
func TestIdentitiesFileMode(t *testing.T) {
	id := filepath.Join(t.TempDir(), "id.txt")
	keygen(t, id)
	dir := filetree.Write(t, "", map[string]string{"app.yaml": "values:\n  x: 1\n"})
	as := []string{"ESCFS_AGE_IDENTITIES=" + id}
	if r := escfsExec(t, as, "", "--dir", dir, "check", "app"); strings.Contains(r.stderr, "accessible to its group or to others") {
		t.Fatalf("mode 0600 warned about: %s", r.stderr)
	}
	if err := os.Chmod(id, 0o644); err != nil {
		t.Fatal(err)
	}
	r := escfsExec(t, as, "", "--dir", dir, "check", "app")
	if !strings.Contains(r.stderr, "accessible to its group or to others (mode 0644)") || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("mode 0644: stderr %q, want a warning", r.stderr)
	}
}
