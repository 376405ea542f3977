package rewrite

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/kumotest"
	"github.com/escfs/escfs/internal/testutil"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/secrets"
	"github.com/escfs/escfs/yamledit"
)

// benchSecrets is how many fn::secret values the secrets benchmark's
// environment holds (the figure).
const benchSecrets = 50

// secretsDefinition is an environment of benchSecrets plaintext fn::secret
// values of 40 bytes, each exported as an environment variable.
func secretsDefinition() string {
	var b strings.Builder
	b.WriteString("# benchmark: 50 secrets\nvalues:\n  app:\n")
	for i := range benchSecrets {
		fmt.Fprintf(&b, "    s%02d:\n      fn::secret: plaintext-%02d-%s\n", i, i, strings.Repeat("x", 27))
	}
	b.WriteString("  environmentVariables:\n")
	for i := range benchSecrets {
		fmt.Fprintf(&b, "    S%02d: ${app.s%02d}\n", i, i)
	}
	return b.String()
}

// secretsBench is a definitions directory holding the same environment three
// times: "plain" with plaintext fn::secret values, "age" encrypted to an age
// recipient and "kms" encrypted to an AWS KMS key in kumo, each written by
// Editor.Encrypt (one data key per file). KMS calls go through a front
// proxy that counts Decrypt calls.
type secretsBench struct {
	tree      *eval.Tree
	idFile    string
	awsConfig func(context.Context, string) (aws.Config, error)
	decrypts  atomic.Int64 // KMS Decrypt calls seen by the proxy
}

func newSecretsBench(tb testing.TB) *secretsBench {
	tb.Helper()
	ctx := context.Background()
	kumo := kumotest.Start(tb)
	sb := &secretsBench{}
	next := kumotest.ProxyTo(tb, kumo)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kumotest.Operation(r) == "Decrypt" {
			sb.decrypts.Add(1)
		}
		next.ServeHTTP(w, r)
	}))
	tb.Cleanup(proxy.Close)
	creds := credentials.NewStaticCredentialsProvider("AKIAKUMOTEST", "kumo-test-secret", "")
	sb.awsConfig = func(_ context.Context, region string) (aws.Config, error) {
		return aws.Config{Region: region, Credentials: creds, BaseEndpoint: aws.String(proxy.URL)}, nil
	}
	admin := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(kumo), Credentials: creds})
	key, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("escfs secrets benchmark")})
	if err != nil {
		tb.Fatal(err)
	}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatal(err)
	}
	sb.idFile = filepath.Join(tb.TempDir(), "identities.txt")
	if err := os.WriteFile(sb.idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	rules := fmt.Sprintf("secrets:\n  - environments: age*\n    age: [%s]\n  - environments: kms*\n    awskms: [%s]\n",
		id.Recipient(), aws.ToString(key.KeyMetadata.Arn))
	files := map[string]string{".escfs.yaml": rules}
	for _, name := range []string{"plain", "age", "kms"} {
		files[name+".yaml"] = secretsDefinition()
	}
	for _, name := range []string{"age-sets", "kms-sets"} {
		files[name+".yaml"] = setsDefinition()
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	if sb.tree, err = eval.ScanDir(dir); err != nil {
		tb.Fatal(err)
	}
	loaded, err := secrets.LoadRules(dir)
	if err != nil {
		tb.Fatal(err)
	}
	keys := sb.keyring(nil)
	defer keys.Close()
	ed := &Editor{Tree: sb.tree, Rules: loaded, Keys: keys, Evaluator: &eval.Evaluator{Providers: builtin.Registry(), Decrypter: keys, AtRest: secrets.AtRest{}}}
	for _, name := range []string{"age", "kms"} {
		c, err := ed.Encrypt(ctx, name)
		if err != nil {
			tb.Fatal(err)
		}
		if c.Count != benchSecrets {
			tb.Fatalf("%s: encrypted %d values, want %d", name, c.Count, benchSecrets)
		}
		if err := c.Write(); err != nil {
			tb.Fatal(err)
		}
	}
	// The same values written by one escfs set each: escfs reuses no data
	// key, so each holds its own.
	for _, name := range []string{"age-sets", "kms-sets"} {
		for i := range benchSecrets {
			c, err := ed.Set(ctx, name, fmt.Sprintf("app.s%02d", i), fmt.Sprintf("plaintext-%02d-%s", i, strings.Repeat("x", 27)), Secret)
			if err != nil {
				tb.Fatal(err)
			}
			if err := c.Write(); err != nil {
				tb.Fatal(err)
			}
			if sb.tree, err = eval.ScanDir(dir); err != nil {
				tb.Fatal(err)
			}
			ed.Tree = sb.tree
		}
	}
	if sb.tree, err = eval.ScanDir(dir); err != nil {
		tb.Fatal(err)
	}
	return sb
}

// setsDefinition is secretsDefinition without its values, which escfs set
// adds one at a time.
func setsDefinition() string {
	var b strings.Builder
	b.WriteString("# benchmark: 50 secrets, one set each\nvalues:\n  app:\n    none: 0\n  environmentVariables:\n")
	for i := range benchSecrets {
		fmt.Fprintf(&b, "    S%02d: ${app.s%02d}\n", i, i)
	}
	return b.String()
}

// keyring returns a Keyring with the benchmark's age identity and KMS
// endpoint, on clock now (nil: time.Now).
func (sb *secretsBench) keyring(now func() time.Time) *secrets.Keyring {
	return secrets.NewKeyring(secrets.KeyringOptions{IdentitiesFile: sb.idFile, AWSConfig: sb.awsConfig, Now: now})
}

// evaluate evaluates the environment name with keys and returns its env
// file.
func (sb *secretsBench) evaluate(tb testing.TB, keys *secrets.Keyring, name string) string {
	e := &eval.Evaluator{Providers: builtin.Registry(), Decrypter: keys, AtRest: secrets.AtRest{}}
	snap, err := e.Evaluate(context.Background(), sb.tree, eval.Request{Name: name, FilesDir: "/run/escfs/" + name})
	if err != nil {
		tb.Fatalf("evaluate %s: %v", name, err)
	}
	if len(snap.Vars) != benchSecrets {
		tb.Fatalf("evaluate %s: %d variables, want %d", name, len(snap.Vars), benchSecrets)
	}
	return string(snap.Env)
}

// BenchmarkEvaluateSecrets evaluates an environment of 50 fn::secret values
// (each exported as a variable, rendered as env, dotenv and values.json) in
// plaintext, encrypted with age and encrypted with AWS KMS (kumo, over
// loopback HTTP), and reports each encrypted form's time as a multiple of
// plaintext's, measured in the same loop (testutil.Paired: "x-plain"). "warm" has the file's
// data key cached, as every evaluation within --key-cache-ttl of the last;
// "cold" lets the cache expire before each evaluation, so the data key is
// unwrapped each time: an X25519 unwrap for age, and for KMS one Decrypt
// over HTTP, counted by a front proxy ("kms-decrypts/op", which must be 1).
func BenchmarkEvaluateSecrets(b *testing.B) {
	sb := newSecretsBench(b)
	plainKeys := sb.keyring(nil)
	defer plainKeys.Close()
	plain := func() { sb.evaluate(b, plainKeys, "plain") }
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			plain()
		}
	})
	for _, name := range []string{"age", "kms", "age-sets", "kms-sets"} {
		b.Run(name+"/warm", func(b *testing.B) {
			keys := sb.keyring(nil)
			defer keys.Close()
			sb.evaluate(b, keys, name) // the data key, unwrapped once
			testutil.Paired(b, "x-plain", plain, func() { sb.evaluate(b, keys, name) })
		})
		b.Run(name+"/cold", func(b *testing.B) {
			clock := testutil.NewClock(time.Now())
			keys := sb.keyring(clock.Now)
			defer keys.Close()
			sb.evaluate(b, keys, name) // the KMS client, made once as in a mount
			before := sb.decrypts.Load()
			testutil.Paired(b, "x-plain", plain, func() {
				clock.Advance(secrets.DefaultCacheTTL + time.Second)
				sb.evaluate(b, keys, name)
			})
			if strings.HasPrefix(name, "kms") {
				perOp := float64(sb.decrypts.Load()-before) / float64(b.N)
				want := map[string]float64{"kms": 1, "kms-sets": benchSecrets}[name] // one per data key
				if perOp != want {
					b.Errorf("%.2f KMS Decrypt calls per cold evaluation of %d secrets, want %v", perOp, benchSecrets, want)
				}
				b.ReportMetric(perOp, "kms-decrypts/op")
			}
		})
	}
}

// TestSecretsBenchIsHonest keeps BenchmarkEvaluateSecrets's input honest: the
// encrypted files hold no plaintext and 50 ciphertexts under one data key,
// all three environments render the same bytes, and a cold evaluation of
// the KMS one costs exactly one KMS Decrypt for its 50 secrets (and a warm
// one none).
func TestSecretsBenchIsHonest(t *testing.T) {
	sb := newSecretsBench(t)
	for _, name := range []string{"age", "kms", "age-sets", "kms-sets"} {
		def, err := sb.tree.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(def.Path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "plaintext-") {
			t.Errorf("%s holds plaintext:\n%s", def.Path, src)
		}
		if n := strings.Count(string(src), "ciphertext:"); n != benchSecrets {
			t.Errorf("%s: %d ciphertexts, want %d", def.Path, n, benchSecrets)
		}
		if n, want := dataKeys(t, src), map[bool]int{false: 1, true: benchSecrets}[strings.HasSuffix(name, "-sets")]; n != want {
			t.Errorf("%s: %d data keys, want %d", def.Path, n, want)
		}
	}
	keys := sb.keyring(nil)
	defer keys.Close()
	want := sb.evaluate(t, keys, "plain")
	if !strings.Contains(want, "export S49='plaintext-49-") {
		t.Fatalf("plain env lacks S49:\n%s", want)
	}
	before := sb.decrypts.Load()
	for _, name := range []string{"age", "kms", "kms"} {
		if got := sb.evaluate(t, keys, name); got != want {
			t.Errorf("%s renders differently from plain:\n%s", name, got)
		}
	}
	if n := sb.decrypts.Load() - before; n != 1 {
		t.Errorf("two evaluations of 50 KMS secrets made %d KMS Decrypt calls, want 1 (one per data key, then cached)", n)
	}
	before = sb.decrypts.Load()
	for _, name := range []string{"age-sets", "kms-sets", "kms-sets"} {
		if got := sb.evaluate(t, keys, name); got != want {
			t.Errorf("%s renders differently from plain:\n%s", name, got)
		}
	}
	if n := sb.decrypts.Load() - before; n != benchSecrets {
		t.Errorf("two evaluations of 50 KMS secrets of 50 data keys made %d KMS Decrypt calls, want %d", n, benchSecrets)
	}
}

// dataKeys returns how many distinct envelope headers (version, recipients,
// wrapped data key) the ciphertexts of src have, each sealing a 40-byte
// value.
func dataKeys(t *testing.T, src []byte) int {
	t.Helper()
	ss, err := yamledit.Secrets(src)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, s := range ss {
		inner, err := innerOf(context.Background(), s.Ciphertext)
		if err != nil {
			t.Fatal(err)
		}
		id, err := secrets.DataKeyID(inner)
		if err != nil {
			t.Fatal(err)
		}
		distinct[id] = true
	}
	return len(distinct)
}
