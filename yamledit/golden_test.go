package yamledit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeEncrypt is a reversible stand-in for a cipher: base64 of "enc:" and
// the plaintext.
func fakeEncrypt(_, plaintext string) (string, error) {
	return base64.StdEncoding.EncodeToString([]byte("enc:" + plaintext)), nil
}

func fakeDecrypt(ciphertext string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil || !bytes.HasPrefix(b, []byte("enc:")) {
		return "", errors.New("not a fake ciphertext")
	}
	return string(b[4:]), nil
}

// golden compares got with the golden file name, or rewrites it with
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncryptGolden: `escfs secrets encrypt` turns each plaintext secret
// under values into {ciphertext: ...} and changes no other byte
// (testdata/encrypt/*.golden); encrypting again changes nothing.
func TestEncryptGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/encrypt/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src := readFile(t, name)
			r, err := Encrypt(src, fakeEncrypt)
			if err != nil {
				t.Fatal(err)
			}
			if r.Fallback {
				t.Fatalf("fell back: %v", r.Reason)
			}
			golden(t, strings.TrimSuffix(name, ".yaml")+".golden", r.Out)
			again, err := Encrypt(r.Out, fakeEncrypt)
			if err != nil || !bytes.Equal(again.Out, r.Out) {
				t.Errorf("encrypting again: %v\n%s", err, again.Out)
			}
			secrets, _ := Secrets(r.Out)
			for _, s := range secrets {
				if s.IsPlaintext {
					t.Errorf("%s still plaintext", s.Path)
				}
			}
		})
	}
}

// TestRotateGolden: `escfs secrets rotate` replaces each base64 scalar
// and nothing else (testdata/rotate/*.golden).
func TestRotateGolden(t *testing.T) {
	rotate := func(_, c string) (string, error) {
		p, err := fakeDecrypt(c)
		if err != nil {
			return "", err
		}
		return fakeEncrypt("", "rotated "+p)
	}
	files, _ := filepath.Glob("testdata/rotate/*.yaml")
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			r, err := Rotate(readFile(t, name), rotate)
			if err != nil || r.Fallback {
				t.Fatalf("err %v, fallback %v (%v)", err, r.Fallback, r.Reason)
			}
			golden(t, strings.TrimSuffix(name, ".yaml")+".golden", r.Out)
		})
	}
}

// TestViewGolden: `escfs edit` shows every ciphertext as its plaintext
// (testdata/view/*.view.golden); the view saved unchanged seals to the
// source byte for byte; an edited view (one value changed, one secret
// added) seals with only those two re-encrypted (*.sealed.golden).
func TestViewGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/view/*.yaml")
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			base := strings.TrimSuffix(name, ".yaml")
			src := readFile(t, name)
			v, err := NewView(src, fakeDecrypt)
			if err != nil || v.Fallback {
				t.Fatalf("err %v, fallback %v", err, v.Fallback)
			}
			golden(t, base+".view.golden", v.Text)
			noEncrypt := func(_, _ string) (string, error) { return "", errors.New("nothing changed, nothing to encrypt") }
			same, err := v.Seal(v.Text, noEncrypt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(same.Out, src) {
				t.Errorf("unchanged view sealed to\n%s\nwant\n%s", same.Out, src)
			}
			edited := bytes.Replace(v.Text, []byte("hunter2"), []byte("hunter3"), 1)
			edited = bytes.Replace(edited, []byte("  plain:\n"), []byte("  added:\n    fn::secret: brand new\n  plain:\n"), 1)
			if bytes.Equal(edited, v.Text) {
				return
			}
			sealed, err := v.Seal(edited, fakeEncrypt)
			if err != nil || sealed.Fallback {
				t.Fatalf("err %v, fallback %v", err, sealed.Fallback)
			}
			golden(t, base+".sealed.golden", sealed.Out)
		})
	}
}

// TestSetGolden: `escfs set` replaces a value in place or inserts the
// missing keys after the last entry of their mapping, at its indentation
// (testdata/set/*.golden), and says when it had to re-encode.
func TestSetGolden(t *testing.T) {
	tests := []struct {
		name     string
		src      string // a file under testdata/set, or inline after "inline:"
		path     string
		value    string
		fallback bool
	}{
		{"existing-scalar", "base", "db.port", "6543", false},
		{"existing-scalar-comment", "base", "db.host", "db2.internal", false},
		{"existing-mapping", "base", "db", "{host: x, port: 1}", false},
		{"existing-secret", "base", "db.password", "{fn::secret: {ciphertext: ZW5jOm5ldw==}}", false},
		{"missing-leaf", "base", "db.user", "admin", false},
		{"missing-intermediate", "base", "cache.redis.url", "redis://cache:6379", false},
		{"list-index", "base", "hosts[1]", "c.example.com", false},
		{"quoted-key-existing", "base", `labels["tier.name"]`, "back", false},
		{"flow-parent", "base", `labels["app.kubernetes.io/name"]`, "web", false},
		{"quoted-key-top", "base", `["dotted.key"]`, "2", false},
		{"empty-parent", "base", "empty.a", "1", false},
		{"block-scalar", "base", "aws.policy", ScalarText("line1\nline2\n", 1), false},
		{"flow-parent-fallback", "base", "labels.pem", "|\n  line1\n  line2", true},
		{"no-values", "novalues", "a.b", "1", false},
		{"crlf", "crlf", "b", "|-\n  x\n  y", false},
		{"json", "json", "b", `"2"`, false},
		{"explicit-key", "explicit", "plain", "2", false},
		{"unlocatable-fallback", "inline:values:\n  ? lonely key\n  b: 1\n", "c", "3", true},
		{"empty-file", "inline:", "a", "1", false},
		{"comments-only", "inline:# nothing yet", "a.b", "1", false},
		{"values-empty", "inline:values:\nother: 1\n", "a", "1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(strings.TrimPrefix(tc.src, "inline:"))
			if !strings.HasPrefix(tc.src, "inline:") {
				src = readFile(t, "testdata/set/"+tc.src+".yaml")
			}
			r, err := Set(src, tc.path, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if r.Fallback != tc.fallback {
				t.Errorf("fallback %v (%v), want %v", r.Fallback, r.Reason, tc.fallback)
			}
			golden(t, "testdata/set/"+tc.name+".golden", r.Out)
		})
	}
}
