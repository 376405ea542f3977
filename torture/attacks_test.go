//go:build torture

package torture

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	esceval "github.com/pulumi/esc/eval"

	"github.com/escfs/escfs/cloud/cloudtest"
	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// The attacks of issue 18, each from the side of a colleague who can write
// definitions (and the rules file) but holds no key: every case is one
// attack on the real binary, and holds if the attacker gets nothing.

// attackWorld is a definitions directory whose secrets are encrypted to
// the owner's age identity, an escfs mount of it, and the owner's
// environment for escfs commands.
type attackWorld struct {
	dir, identity, recipient string
	env                      []string
	e                        *escfstest.Escfs
}

func newAttackWorld(t *testing.T) *attackWorld {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	w := &attackWorld{dir: t.TempDir(), recipient: id.Recipient().String()}
	w.identity = filepath.Join(t.TempDir(), "identities.txt")
	if err := os.WriteFile(w.identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env = append(os.Environ(), "ESCFS_AGE_IDENTITIES="+w.identity, "HOME="+t.TempDir())
	filetree.WriteFile(t, filepath.Join(w.dir, "good.yaml"), goodDef)
	w.rules(t, w.recipient)
	filetree.WriteFile(t, filepath.Join(w.dir, "prod/db.yaml"), "values:\n  environmentVariables:\n    DB_PASSWORD: ${db.password}\n")
	filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), "values:\n  environmentVariables:\n    DB_PASSWORD: ${db.password}\n    API_KEY: ${api.key}\n")
	for _, s := range [][3]string{{"prod/db", "db.password", "prod-password-1f2e"}, {"dev/app", "db.password", "dev-password-3c4d"}, {"dev/app", "api.key", "dev-api-key-5a6b"}} {
		if r := w.escfs(t, s[2], "set", s[0], s[1], "-", "--secret", "--yes"); r.Code != 0 {
			t.Fatalf("set %s %s: exit %d: %s", s[0], s[1], r.Code, r.Stderr)
		}
	}
	w.e = escfstest.Mount(t, w.dir, w.env)
	return w
}

// rules writes .escfs.yaml: every environment encrypted to recipients.
func (w *attackWorld) rules(t *testing.T, recipients ...string) {
	filetree.WriteFile(t, filepath.Join(w.dir, ".escfs.yaml"), "secrets:\n  - environments: \"*\"\n    age: ["+strings.Join(recipients, ", ")+"]\n")
}

// file returns the content of the definition of env.
func (w *attackWorld) file(t *testing.T, env string) string {
	b, err := os.ReadFile(filepath.Join(w.dir, env+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ciphertext returns the ciphertext at path in src.
func ciphertextAt(t *testing.T, src, path string) string {
	ss, err := yamledit.Secrets([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Path == path && !s.IsPlaintext {
			return s.Ciphertext
		}
	}
	t.Fatalf("no ciphertext at %s in:\n%s", path, src)
	return ""
}

// escfs runs the real binary with the owner's environment.
func (w *attackWorld) escfs(t *testing.T, stdin string, args ...string) escfstest.Result {
	return runEscfs(t, w.env, stdin, append([]string{"--dir", w.dir}, args...)...)
}

// runEscfs runs the real binary with env, bounded at 3 minutes.
func runEscfs(t *testing.T, env []string, stdin string, args ...string) escfstest.Result {
	t.Helper()
	return escfstest.Run(t, 3*time.Minute, escfstest.Options{Env: env, Stdin: strings.NewReader(stdin)}, args...)
}

// TestAttacks runs the ten attacks.
func TestAttacks(t *testing.T) {
	w := newAttackWorld(t)
	ctx := context.Background()

	t.Run("1-moved-ciphertexts", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		orig := w.file(t, "dev/app")
		prodCT := ciphertextAt(t, w.file(t, "prod/db"), "db.password")
		devCT, keyCT := ciphertextAt(t, orig, "db.password"), ciphertextAt(t, orig, "api.key")
		read := 0
		for _, c := range []struct{ name, src string }{
			{"copied from prod", strings.Replace(orig, devCT, prodCT, 1)},
			{"swapped", strings.NewReplacer(devCT, keyCT, keyCT, devCT).Replace(orig)},
		} {
			filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), c.src)
			var b []byte
			var err error
			escfstest.Eventually(t, 10*time.Second, func() string {
				b, err = escfstest.Read(w.e.Path("dev/app/env"), 15*time.Second)
				if err == nil && !strings.Contains(string(b), "prod-password") && strings.Contains(string(b), "dev-password-3c4d") && strings.Contains(string(b), "dev-api-key-5a6b") &&
					strings.Index(string(b), "dev-password") < strings.Index(string(b), "dev-api-key") {
					return "still the old definition"
				}
				return ""
			})
			if err == nil {
				read++
				t.Errorf("%s: dev/app/env read: %q", c.name, b)
			}
			if msg := errorAt(statusWithin(t, w.e, "dev/app"), w.dir, "ciphertext belongs to"); msg != "" {
				t.Errorf("%s: %s", c.name, msg)
			}
			before := w.file(t, "dev/app")
			if r := w.escfs(t, "", "secrets", "rotate", "--yes", "dev/app"); r.Code == 0 || w.file(t, "dev/app") != before {
				t.Errorf("%s: rotate exit %d, file changed %v: %s", c.name, r.Code, w.file(t, "dev/app") != before, r.Stderr)
			}
		}
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), orig)
		note(groupAttacks, "1: %d of 2 moved ciphertexts read, 0 re-encrypted", read)
	})

	t.Run("2-planted-data-key", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		orig := w.file(t, "dev/app")
		attacker := secrets.NewKeyring(secrets.KeyringOptions{IdentitiesFile: filepath.Join(t.TempDir(), "none.txt")})
		defer attacker.Close()
		planted, err := attacker.NewSealer(ctx, []string{w.recipient})
		if err != nil {
			t.Fatal(err)
		}
		ct, err := esceval.EncryptSecret(ctx, planted.For(secrets.Binding{Env: "dev/app", Path: "planted"}), []byte("bait"))
		if err != nil {
			t.Fatal(err)
		}
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), orig+"  planted: {fn::secret: {ciphertext: "+base64.StdEncoding.EncodeToString(ct)+"}}\n  later: {fn::secret: later-plaintext}\n")
		if r := w.escfs(t, "set-secret-value", "set", "dev/app", "fresh", "-", "--secret", "--yes"); r.Code != 0 {
			t.Fatalf("set: %s", r.Stderr)
		}
		if r := w.escfs(t, "", "secrets", "encrypt", "--yes", "dev/app"); r.Code != 0 {
			t.Fatalf("encrypt: %s", r.Stderr)
		}
		editor := filepath.Join(t.TempDir(), "editor.sh")
		os.WriteFile(editor, []byte("#!/bin/sh\nprintf '  edited: {fn::secret: edit-secret-value}\\n' >> \"$1\"\n"), 0o755)
		if r := runEscfs(t, append(w.env, "EDITOR="+editor, "VISUAL="), "", "--dir", w.dir, "edit", "--yes", "dev/app"); r.Code != 0 {
			t.Fatalf("edit: %s", r.Stderr)
		}
		out := w.file(t, "dev/app")
		read := 0
		for _, p := range []string{"fresh", "later", "edited"} {
			inner, err := esceval.DecryptSecret(ctx, passThrough{}, ciphertextAt(t, out, p))
			if err != nil {
				t.Fatal(err)
			}
			if got, _, err := attacker.DecryptAt(ctx, inner, secrets.Binding{Env: "dev/app", Path: p}); err == nil {
				read++
				t.Errorf("the attacker read %s (%d bytes)", p, len(got))
			}
		}
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), orig)
		note(groupAttacks, "2: %d of 3 new secrets read with the planted key", read)
	})

	t.Run("3-recipient-added", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		orig := w.file(t, "dev/app")
		intruder, _ := age.GenerateX25519Identity()
		w.rules(t, w.recipient, intruder.Recipient().String())
		defer w.rules(t, w.recipient)
		r := w.escfs(t, "v", "set", "dev/app", "more", "-", "--secret") // no terminal, no --yes
		if r.Code == 0 || !strings.Contains(r.Stderr, intruder.Recipient().String()) || w.file(t, "dev/app") != orig {
			t.Errorf("set with a new recipient: exit %d, file changed %v: %s", r.Code, w.file(t, "dev/app") != orig, r.Stderr)
		}
		check, stderr, _ := escfstest.Run(t, 2*time.Minute, escfstest.Options{Env: w.env}, "--dir", w.dir, "check", "dev/app").Parts()
		if warned := strings.Count(check, "but the rule at"); warned != 2 || !strings.Contains(check, intruder.Recipient().String()) {
			t.Errorf("check warns at %d envelopes of 2 encrypted before the rule changed:\n%s%s", warned, check, stderr)
		}
		note(groupAttacks, "3: %d secrets encrypted to an unconfirmed recipient", btoi(w.file(t, "dev/app") != orig))
	})

	t.Run("4-kms-amplification", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		var calls sync.Map
		kms := testutil.NewRecorder(t, func(rw http.ResponseWriter, r *http.Request) {
			n, _ := calls.LoadOrStore(r.Header.Get("X-Amz-Target"), new(int))
			*(n.(*int))++
			rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
			rw.WriteHeader(http.StatusBadRequest)
			io.WriteString(rw, `{"__type":"AccessDeniedException","message":"no"}`)
		})
		orig := w.file(t, "dev/app")
		var src strings.Builder
		src.WriteString(orig)
		for i := range 12 {
			path := fmt.Sprintf("forged%d", i)
			inner, err := secrets.ForgeKMSEnvelope(secrets.Binding{Env: "dev/app", Path: path}, 590, 1)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&src, "  %s: {fn::secret: {ciphertext: %s}}\n", path, b64(inner))
		}
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), src.String())
		env := append(w.env, "AWS_ENDPOINT_URL="+kms.URL, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIATORTURE", "AWS_SECRET_ACCESS_KEY=torture-secret-key", "AWS_EC2_METADATA_DISABLED=true")
		r := runEscfs(t, env, "", "--dir", w.dir, "open", "dev/app")
		total := 0
		calls.Range(func(_, v any) bool { total += *(v.(*int)); return true })
		if r.Code == 0 || total > 8 {
			t.Errorf("open: exit %d after %d KMS calls: %.500s", r.Code, total, r.Stderr)
		}
		if len(r.Stderr) > 64<<10 {
			t.Errorf("%d bytes of diagnostics: the attacker's ARNs reach the output", len(r.Stderr))
		}
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), orig)
		note(groupAttacks, "4: 12×590 forged KMS stanzas cost %d KMS calls (was 7,416), open failed in %v, %d bytes of stderr", total, r.Took.Round(10*time.Millisecond), len(r.Stderr))
	})

	t.Run("5-plaintext-on-disk", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		if _, err := exec.LookPath("vim"); err != nil {
			t.Fatal("vim is needed (.ci/run installs it)")
		}
		home := t.TempDir()
		env := append(w.env, "HOME="+home, "EDITOR=vim -c '%s/dev-password-3c4d/dev-password-3c4d/' -c wq", "VISUAL=")
		if r := runEscfs(t, env, "", "--dir", w.dir, "edit", "dev/app"); r.Code != 0 {
			t.Fatalf("edit: exit %d: %s", r.Code, r.Stderr)
		}
		var traces []string
		filepath.Walk(home, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("dev-password-3c4d")) {
					traces = append(traces, p)
				}
			}
			return nil
		})
		if len(traces) > 0 {
			t.Errorf("the secret is in %v", traces)
		}
		note(groupAttacks, "5: %d files under HOME hold the secret after escfs edit ran vim on it", len(traces))
	})

	t.Run("6-credentials-to-a-definition's-url", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		attacker := testutil.NewRecorder(t, nil)
		orig := w.file(t, "dev/app")
		env := append(w.env, "PULUMI_ACCESS_TOKEN=pul-torture-0123456789abcdef", "PULUMI_API=https://api.pulumi.com", "ESCFS_ALLOW_HOSTS=",
			"AWS_ACCESS_KEY_ID=AKIATORTURE", "AWS_SECRET_ACCESS_KEY=torture-secret-key", "AWS_SESSION_TOKEN=torture-session-token", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
		for _, backend := range []string{attacker.URL, "s3://state?region=us-east-1&s3ForcePathStyle=true&endpoint=" + attacker.URL} {
			filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), "values:\n  st:\n    fn::open::pulumi-stacks:\n      backend: "+backend+"\n      stacks:\n        a: {stack: acme/net/prod}\n")
			if r := runEscfs(t, env, "", "--dir", w.dir, "open", "dev/app"); r.Code == 0 || !strings.Contains(r.Stderr, "--allow-host") {
				t.Errorf("backend %s: exit %d: %.500s", backend, r.Code, r.Stderr)
			}
		}
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), orig)
		if n := attacker.Carrying(""); n > 0 {
			record(groupAttacks, func(g *tally) { g.leaked += n })
			t.Errorf("the definition's URL got credentials %d times", n)
		}
		note(groupAttacks, "6: %d requests with credentials reached a backend URL a definition named", attacker.Carrying(""))
	})

	t.Run("7-redirect", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		attacker := testutil.NewRecorder(t, nil)
		redirector := testutil.NewRecorder(t, func(rw http.ResponseWriter, r *http.Request) {
			http.Redirect(rw, r, attacker.URL+r.URL.Path, http.StatusTemporaryRedirect)
		})
		orig := w.file(t, "dev/app")
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), "values:\n  st:\n    fn::open::pulumi-stacks:\n      stacks:\n        a: {stack: acme/net/prod}\n")
		env := append(w.env, "PULUMI_ACCESS_TOKEN=pul-torture-0123456789abcdef", "PULUMI_API="+redirector.URL)
		r := runEscfs(t, env, "", "--dir", w.dir, "open", "dev/app")
		filetree.WriteFile(t, filepath.Join(w.dir, "dev/app.yaml"), orig)
		if r.Code == 0 || !strings.Contains(r.Stderr, "refused a redirect") || redirector.Carrying("") == 0 {
			t.Errorf("open: exit %d (the Cloud got %d tokens): %.500s", r.Code, redirector.Carrying(""), r.Stderr)
		}
		if n := attacker.Carrying(""); n > 0 {
			record(groupAttacks, func(g *tally) { g.leaked += n })
			t.Errorf("the redirect's target got the token %d times", n)
		}
		note(groupAttacks, "7: %d tokens followed a redirect to another port", attacker.Carrying(""))
	})

	t.Run("8-echoed-token", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		const token = "pul-torture-echo-0123456789abcdef"
		shown := 0
		for _, c := range []struct {
			status int
			body   string
		}{{401, `{"code":401,"message":"bad token %s"}`}, {500, `{"code":500,"message":"crash on %s"}`}, {400, "<html><pre>%s</pre></html>"}} {
			echo := testutil.NewRecorder(t, func(rw http.ResponseWriter, r *http.Request) {
				rw.WriteHeader(c.status)
				fmt.Fprintf(rw, c.body, r.Header.Get("Authorization"))
			})
			env := append(w.env, "PULUMI_ACCESS_TOKEN="+token, "PULUMI_BACKEND_URL="+echo.URL)
			r := runEscfs(t, env, "", "--cloud", "acme", "--request-timeout", "20s", "ls")
			if n := strings.Count(r.Stdout+r.Stderr, token); n > 0 || r.Code == 0 {
				shown += n
				t.Errorf("%d: exit %d, the token shown %d times", c.status, r.Code, n)
			}
		}
		record(groupAttacks, func(g *tally) { g.leaked += shown })
		note(groupAttacks, "8: the token echoed in 401, 500 and HTML 400 bodies printed %d times", shown)
	})

	t.Run("9-unbounded-cloud", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		big := testutil.NewRecorder(t, func(rw http.ResponseWriter, r *http.Request) {
			io.WriteString(rw, `{"environments":[`)
			entry := []byte(strings.Repeat(`{"organization":"acme","project":"p","name":"e"},`, 2000))
			for sent := 0; sent < 1536<<20; sent += len(entry) {
				if _, err := rw.Write(entry); err != nil {
					return
				}
			}
		})
		slow := testutil.NewRecorder(t, func(rw http.ResponseWriter, r *http.Request) {
			for range 200 {
				rw.Write([]byte(" "))
				rw.(http.Flusher).Flush()
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
					return
				}
			}
		})
		token := "PULUMI_ACCESS_TOKEN=pul-torture-0123456789abcdef"
		rb := runEscfs(t, append(w.env, token, "PULUMI_BACKEND_URL="+big.URL), "", "--cloud", "acme", "ls")
		if rb.Code == 0 || !strings.Contains(rb.Stderr, "too large") || rb.MaxRSS > 512<<20 {
			t.Errorf("1.5 GB listing: exit %d, peak RSS %d MB: %.300s", rb.Code, rb.MaxRSS>>20, rb.Stderr)
		}
		rs := runEscfs(t, append(w.env, token, "PULUMI_BACKEND_URL="+slow.URL), "", "--cloud", "acme", "--request-timeout", "10s", "ls")
		if rs.Code == 0 || rs.Took > 60*time.Second {
			t.Errorf("a byte every 2 s: exit %d after %v: %.300s", rs.Code, rs.Took, rs.Stderr)
		}
		note(groupAttacks, "9: a 1.5 GB listing refused at peak RSS %d MB (was 3.2 GB); a byte every 2 s cut off after %v with --request-timeout 10s (was 148 s)",
			rb.MaxRSS>>20, rs.Took.Round(100*time.Millisecond))
	})

	t.Run("10-long-name", func(t *testing.T) {
		track(t, groupAttacks, w.e)
		sim := cloudtest.Start(t, cloudtest.Options{})
		sim.Put("acme", "app", "values: {x: 1}\n")
		sim.Put("acme", strings.Repeat("n", 5000), "values: {x: 1}\n")
		sim.Put("acme", "zed", "values: {x: 1}\n")
		env := append(w.env, "PULUMI_ACCESS_TOKEN="+sim.Token(), "PULUMI_BACKEND_URL="+sim.URL)
		r := runEscfs(t, env, "", "--cloud", "acme", "ls")
		if r.Code != 0 || r.Stdout != "app\nzed\n" || !strings.Contains(r.Stderr, "left out") {
			t.Errorf("ls: exit %d, %q: %.300s", r.Code, r.Stdout, r.Stderr)
		}
		m := escfstest.MountCloud(t, env, "--cloud", "acme")
		entries, err := os.ReadDir(m.Mnt)
		if err != nil || len(entries) != 2 {
			t.Errorf("ls MNT: %d entries, %v", len(entries), err)
		}
		note(groupAttacks, "10: a 5,000-byte name left out; %d of 2 other environments listed through the mount", len(entries))
	})
}

// b64 wraps inner, a keyring envelope, in esc's secret envelope, as a
// definition's ciphertext holds it.
func b64(inner []byte) string {
	ct, err := esceval.EncryptSecret(context.Background(), passThrough{}, inner)
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(ct)
}

// passThrough wraps and unwraps esc's secret envelope and nothing else.
type passThrough struct{}

func (passThrough) Encrypt(_ context.Context, b []byte) ([]byte, error) { return bytes.Clone(b), nil }
func (passThrough) Decrypt(_ context.Context, b []byte) ([]byte, error) { return bytes.Clone(b), nil }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
