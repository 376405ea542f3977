package secrets

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
)

// TestKeygen: a new file is 0600 under 0700 directories in age-keygen's
// format, later keys are appended, and a file others can read is refused.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "identities.txt")
	rec1, err := Keygen(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v, %v; want a 0700 directory", p, info.Mode(), err)
		}
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want 0600", path, info.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	format := regexp.MustCompile(`^# created: \d{4}-\d\d-\d\dT[^\n]+\n# public key: (age1[0-9a-z]+)\nAGE-SECRET-KEY-1[0-9A-Z]+\n$`)
	m := format.FindSubmatch(data)
	if m == nil || string(m[1]) != rec1 {
		t.Fatalf("file is not in age-keygen format for %s:\n%s", rec1, data)
	}

	// A second key is appended, on a line of its own even if the file
	// lost its last newline.
	if err := os.WriteFile(path, data[:len(data)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	rec2, err := Keygen(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	ids, err := age.ParseIdentities(f)
	f.Close()
	if err != nil || len(ids) != 2 {
		t.Fatalf("after two keygens: %d identities, %v", len(ids), err)
	}
	for i, want := range []string{rec1, rec2} {
		if got := ids[i].(*age.X25519Identity).Recipient().String(); got != want {
			t.Fatalf("identity %d is %s, want %s", i, got, want)
		}
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(path)
		_, err := Keygen(path)
		if err == nil || !strings.Contains(err.Error(), "accessible by group or others") {
			t.Fatalf("mode %04o: err = %v, want a refusal", mode, err)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Fatalf("mode %04o: the file changed", mode)
		}
	}
	if _, err := Keygen(dir); err == nil {
		t.Fatal("Keygen on a directory succeeded")
	}
}

// TestDefaultIdentitiesPath: $ESCFS_AGE_IDENTITIES, else the user's
// configuration directory.
func TestDefaultIdentitiesPath(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	t.Setenv(IdentitiesEnv, "")
	if got, err := DefaultIdentitiesPath(); err != nil || got != "/cfg/escfs/age/identities.txt" {
		t.Fatalf("got %q, %v", got, err)
	}
	t.Setenv(IdentitiesEnv, "/keys/mine.txt")
	if got, err := DefaultIdentitiesPath(); err != nil || got != "/keys/mine.txt" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, _ := NewKeyring(KeyringOptions{}).IdentitiesFile(); got != "/keys/mine.txt" {
		t.Fatalf("NewKeyring looks in %q", got)
	}
}
