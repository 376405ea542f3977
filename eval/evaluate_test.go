package eval

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"
	esceval "github.com/pulumi/esc/eval"

	"github.com/escfs/escfs/providers/builtin"
)

const importsDir = "testdata/imports"

var fixedNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// testEvaluator returns an evaluator with the shipped providers and a fixed clock.
func testEvaluator() *Evaluator {
	return &Evaluator{Providers: builtin.Registry(), Now: func() time.Time { return fixedNow }}
}

// evaluate scans dir and evaluates name in it, failing the test if that takes
// more than 10 seconds (an import cycle must not hang).
func evaluate(t testing.TB, e *Evaluator, dir, name string) (*Snapshot, error) {
	t.Helper()
	tree, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Problems) > 0 {
		t.Fatalf("problems scanning %s: %v", dir, tree.Problems)
	}
	type result struct {
		snap *Snapshot
		err  error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		snap, err := e.Evaluate(ctx, tree, Request{Name: name, FilesDir: "/run/escfs/" + name})
		done <- result{snap, err}
	}()
	select {
	case r := <-done:
		return r.snap, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("evaluating %s did not finish in 10s", name)
		return nil, nil
	}
}

// compactJSON returns s compacted, for comparing JSON texts.
func compactJSON(t testing.TB, s []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, s); err != nil {
		t.Fatalf("invalid JSON %q: %v", s, err)
	}
	return b.String()
}

// wantDiag describes an expected diagnostic. File is relative to the
// definitions directory.
type wantDiag struct {
	file      string
	line, col int
	severity  Severity
	msg       string // substring of the message
}

func (w wantDiag) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: ...%s...", w.file, w.line, w.col, w.severity, w.msg)
}

// checkDiags checks that got holds exactly the wanted diagnostics, in any order.
func checkDiags(t *testing.T, dir string, got Diagnostics, want []wantDiag) {
	t.Helper()
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for i, d := range got {
			if used[i] || d.File != filepath.Join(dir, w.file) || d.Line != w.line || d.Column != w.col ||
				d.Severity != w.severity || !strings.Contains(d.Message, w.msg) {
				continue
			}
			used[i] = true
			continue next
		}
		t.Errorf("no diagnostic %v in:\n%s", w, diagLines(got))
	}
	for i, d := range got {
		if !used[i] {
			t.Errorf("unexpected diagnostic %v", d)
		}
	}
}

func diagLines(ds Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\t%v\n", d)
	}
	return b.String()
}

func names(ns []Name) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.String()
	}
	return out
}

func TestEvaluateImports(t *testing.T) {
	tests := []struct {
		name  string
		env   string
		json  string // compact ValuesJSON; "" when evaluation fails
		diags []wantDiag
		deps  []string // in any order
	}{
		{
			// Imports merge in order, later over earlier, and the importer's own
			// values over all of them; objects merge key by key.
			name: "diamond",
			env:  "diamond",
			json: `{"bc":"from-c","fromB":"b","fromC":"c","fromD":"d","nested":{"w":"d","x":"b","y":"c","z":"c"},"own":"diamond","shared":"from-diamond"}`,
			deps: []string{"default/b", "default/c", "default/d", "default/diamond"},
		},
		{
			name: "short import name",
			env:  "viaShort",
			json: `{"fromD":"d","nested":{"w":"d"},"shared":"from-d"}`,
			deps: []string{"default/d", "default/viaShort"},
		},
		{
			name: "default/ import name",
			env:  "viaLong",
			json: `{"fromD":"d","nested":{"w":"d"},"shared":"from-d"}`,
			deps: []string{"default/d", "default/viaLong"},
		},
		{
			name: "project-qualified import",
			env:  "qualified",
			json: `{"got":"from-proj-p","pv":"from-proj-p","shared":"from-p"}`,
			deps: []string{"proj/p", "default/qualified"},
		},
		{
			name: "project-qualified root",
			env:  "proj/p",
			json: `{"pv":"from-proj-p","shared":"from-p"}`,
			deps: []string{"proj/p"},
		},
		{
			// merge: false keeps b's values out of the result but reachable as
			// ${imports.b...}; ${environments.P.E...} imports inline.
			name: "merge false, imports and environments references",
			env:  "nomerge",
			json: `{"fromD":"d","inline":"from-proj-p","inlineDefault":"c","merged":"d","nested":{"w":"d"},"nestedViaImports":"b","shared":"from-d","viaImports":"b"}`,
			deps: []string{"default/b", "default/c", "default/d", "proj/p", "default/nomerge"},
		},
		{
			name: "context",
			env:  "context",
			json: `{"current":"default/context","importedCurrent":"proj/ctx","importedRoot":"default/context","root":"default/context"}`,
			deps: []string{"proj/ctx", "default/context"},
		},
		{
			name: "$$ escapes",
			env:  "escapes",
			json: `{"both":"${name} is world","dollar":"$5","double":"$${name}","lone":"costs $ 5","name":"world","notInterp":"${name}"}`,
			deps: []string{"default/escapes"},
		},
		{
			name: "every builtin",
			env:  "builtins",
			json: `{"concat":[1,2,"three"],"final":"fixed","fromBase64":"hello, world","fromJSON":{"q":[1,"two"],"r":null},` +
				`"join":"a-b-c","secret":"hunter2","split":["a","b","","c"],"tags":["a","b","c"],"toBase64":"aGVsbG8sIHdvcmxk",` +
				`"toJSON":"{\"a\":\"\\u003c\\u0026\\u003e\",\"b\":[1,true,null]}","toStringBool":"true","toStringNum":"42",` +
				`"toStringObj":"\"a\"=\"x\"","toYAML":"a: x\nb:\n    - \"y\"\n","valid":"ok"}`,
			deps: []string{"default/builtins"},
		},
		{
			// Overriding a fn::final value is a warning; the final value stays.
			name:  "final",
			env:   "finalChild",
			json:  `{"locked":"base","open":"child"}`,
			diags: []wantDiag{{"finalChild.yaml", 4, 11, SeverityWarning, "cannot override final value"}},
			deps:  []string{"default/finalBase", "default/finalChild"},
		},
		{
			name:  "fn::validate failure",
			env:   "invalid",
			diags: []wantDiag{{"invalid.yaml", 5, 14, SeverityError, "expected number, got string"}},
			deps:  []string{"default/invalid"},
		},
		{
			name:  "cycle of two",
			env:   "cycA",
			diags: []wantDiag{{"cycA.yaml", 2, 5, SeverityError, "cyclic import of cycB"}},
			deps:  []string{"default/cycA", "default/cycB"},
		},
		{
			name:  "self import",
			env:   "self",
			diags: []wantDiag{{"self.yaml", 2, 5, SeverityError, "cyclic import of self"}},
			deps:  []string{"default/self"},
		},
		{
			// Every bad import is reported on its own line; names that were
			// missing are dependencies (creating them must re-evaluate), invalid
			// names are not.
			name: "missing and invalid imports",
			env:  "missing",
			diags: []wantDiag{
				{"missing.yaml", 3, 5, SeverityError, `environment "nothere" not found`},
				{"missing.yaml", 4, 5, SeverityError, `invalid environment name "bad name"`},
				{"missing.yaml", 5, 5, SeverityError, `invalid environment name "d@3": versions (@) are not supported`},
				{"missing.yaml", 6, 5, SeverityError, `environment "other/gone" not found`},
				{"missing.yaml", 8, 8, SeverityError, `environment "inl/gone" not found`},
			},
			deps: []string{"default/d", "default/nothere", "other/gone", "inl/gone", "default/missing"},
		},
		{
			name:  "unknown provider",
			env:   "unknownProvider",
			diags: []wantDiag{{"unknownProvider.yaml", 3, 5, SeverityError, `unknown provider "no-such-provider" (escfs knows: aws-login, aws-parameter-store, aws-secrets, azure-login, azure-secrets, gcp-login, gcp-secrets, pulumi-stacks, token, vault-login, vault-secrets)`}},
			deps:  []string{"default/unknownProvider"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := evaluate(t, testEvaluator(), importsDir, tt.env)
			if snap == nil {
				t.Fatalf("no snapshot: %v", err)
			}
			want, _ := ParseName(tt.env)
			if snap.Name != want || snap.Path != filepath.Join(importsDir, filepath.FromSlash(tt.env)+".yaml") {
				t.Errorf("snapshot of %s/%s, want %s", snap.Name, snap.Path, want)
			}
			if !snap.EvaluatedAt.Equal(fixedNow) {
				t.Errorf("EvaluatedAt = %v, want the evaluator's clock %v", snap.EvaluatedAt, fixedNow)
			}
			checkDiags(t, importsDir, snap.Diagnostics, tt.diags)
			gotDeps := names(snap.Deps)
			if !slices.Contains(gotDeps, want.String()) {
				t.Errorf("Deps %q lack the environment itself", gotDeps)
			}
			slices.Sort(gotDeps)
			wantDeps := slices.Sorted(slices.Values(tt.deps))
			if !slices.Equal(gotDeps, wantDeps) {
				t.Errorf("Deps = %q, want %q (no repeats)", gotDeps, wantDeps)
			}
			if tt.json == "" {
				var de *DiagnosticsError
				if !errors.As(err, &de) {
					t.Fatalf("err = %v (%T), want a *DiagnosticsError", err, err)
				}
				if !slices.Equal(de.Diagnostics, snap.Diagnostics) {
					t.Errorf("error's diagnostics differ from the snapshot's")
				}
				if snap.Env != nil || snap.ValuesJSON != nil || snap.Vars != nil || snap.Dotenv != nil {
					t.Errorf("a failed evaluation has renderings: env %q json %q", snap.Env, snap.ValuesJSON)
				}
				return
			}
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if got := compactJSON(t, snap.ValuesJSON); got != tt.json {
				t.Errorf("values:\n got %s\nwant %s", got, tt.json)
			}
		})
	}
}

func TestEvaluateShortAndLongNamesAgree(t *testing.T) {
	short, err := evaluate(t, testEvaluator(), importsDir, "diamond")
	if err != nil {
		t.Fatal(err)
	}
	long, err := evaluate(t, testEvaluator(), importsDir, "default/diamond")
	if err != nil {
		t.Fatal(err)
	}
	if short.Name != long.Name || short.Path != long.Path || !bytes.Equal(short.ValuesJSON, long.ValuesJSON) {
		t.Errorf("diamond and default/diamond differ:\n%s %s %s\n%s %s %s", short.Name, short.Path, short.ValuesJSON, long.Name, long.Path, long.ValuesJSON)
	}
}

func TestEvaluateUnknownEnvironment(t *testing.T) {
	for _, name := range []string{"nope", "proj/nope", "bad name", "d@1"} {
		snap, err := evaluate(t, testEvaluator(), importsDir, name)
		if err == nil || snap != nil {
			t.Errorf("Evaluate(%q) = %v, %v; want nil and an error", name, snap, err)
		}
		var de *DiagnosticsError
		if errors.As(err, &de) {
			t.Errorf("Evaluate(%q) error is a *DiagnosticsError: %v", name, err)
		}
	}
}

func TestEvaluateSyntaxError(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"broken.yaml":   "values:\n  a: [1, 2\n",
		"reserved.yaml": "values:\n  imports: 1\n  context: 2\n",
		"fn.yaml":       "values:\n  fn::nope: 2\n",
		"deep.yaml":     "values:\n  a:\n    fn::nope: 2\n",
		"imp.yaml":      "imports:\n  - broken\nvalues:\n  b: 1\n",
	})
	tests := []struct {
		env   string
		diags []wantDiag
	}{
		// YAML syntax errors carry only yaml.v3's line (here 1, the line
		// before the unclosed list): they must name the file and the line
		// at fault.
		{"broken", []wantDiag{{"broken.yaml", 2, 3, SeverityError, "did not find expected ',' or ']'"}}},
		{"imp", []wantDiag{{"broken.yaml", 2, 3, SeverityError, "did not find expected ',' or ']'"}}},
		{"reserved", []wantDiag{
			{"reserved.yaml", 2, 3, SeverityError, `"imports" is a reserved key`},
			{"reserved.yaml", 3, 3, SeverityError, `"context" is a reserved key`},
		}},
		{"fn", []wantDiag{{"fn.yaml", 2, 3, SeverityError, `builtin function call "fn::nope" not allowed at the top level`}}},
		{"deep", []wantDiag{{"deep.yaml", 3, 5, SeverityError, `'fn::' is a reserved prefix`}}},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			snap, err := evaluate(t, testEvaluator(), dir, tt.env)
			if snap == nil || err == nil {
				t.Fatalf("Evaluate = %v, %v; want a snapshot with errors", snap, err)
			}
			checkDiags(t, dir, snap.Diagnostics, tt.diags)
		})
	}
}

// reverser is an Encrypter and Decrypter whose "encryption" reverses bytes.
type reverser struct{}

func (reverser) Encrypt(_ context.Context, b []byte) ([]byte, error) { return reversed(b), nil }
func (reverser) Decrypt(_ context.Context, b []byte) ([]byte, error) { return reversed(b), nil }

func reversed(b []byte) []byte {
	out := slices.Clone(b)
	slices.Reverse(out)
	return out
}

func TestEvaluateCiphertext(t *testing.T) {
	ct, err := esceval.EncryptSecret(context.Background(), reverser{}, []byte("pa$$word"))
	if err != nil {
		t.Fatal(err)
	}
	secret := fmt.Sprintf("values:\n  c:\n    fn::secret:\n      ciphertext: %s\n  environmentVariables:\n    C: ${c}\n",
		base64.StdEncoding.EncodeToString(ct))
	dir := writeTree(t, map[string]string{
		"enc.yaml": secret,
		"imp.yaml": "imports:\n  - enc\nvalues:\n  d: ${c}\n",
	})

	t.Run("no key", func(t *testing.T) {
		for _, env := range []string{"enc", "imp"} {
			snap, err := evaluate(t, testEvaluator(), dir, env)
			if err == nil || snap == nil {
				t.Fatalf("Evaluate(%s) = %v, %v; want diagnostics", env, snap, err)
			}
			checkDiags(t, dir, snap.Diagnostics, []wantDiag{{"enc.yaml", 3, 5, SeverityError, ErrNoKey.Error()}})
		}
	})
	t.Run("with key", func(t *testing.T) {
		e := testEvaluator()
		e.Decrypter, e.AtRest = reverser{}, noAtRest{}
		for _, env := range []string{"enc", "imp"} {
			snap, err := evaluate(t, e, dir, env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(snap.Secrets, []string{"pa$$word"}) {
				t.Errorf("%s: Secrets = %q", env, snap.Secrets)
			}
			c := snap.Values.Value.(map[string]esc.Value)["c"]
			if c.Value != "pa$$word" || !c.Secret {
				t.Errorf("%s: c = %#v, want the secret plaintext", env, c)
			}
		}
		snap, _ := evaluate(t, e, dir, "enc")
		if want := "export C='pa$$word'\n"; string(snap.Env) != want {
			t.Errorf("Env = %q, want %q", snap.Env, want)
		}
		if len(snap.Vars) != 1 || !snap.Vars[0].Secret {
			t.Errorf("Vars = %+v, want C marked secret", snap.Vars)
		}
	})
	t.Run("a key without AtRest", func(t *testing.T) {
		// Nothing would check where a ciphertext belongs: nothing decrypts.
		e := testEvaluator()
		e.Decrypter = reverser{}
		if snap, err := evaluate(t, e, dir, "enc"); !errors.Is(err, ErrNoAtRest) || snap != nil {
			t.Fatalf("Evaluate = %v, %v; want ErrNoAtRest and no snapshot", snap, err)
		}
	})
}

func TestEvaluateCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tree, err := ScanDir(importsDir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := testEvaluator().Evaluate(ctx, tree, Request{Name: "diamond"})
	if !errors.Is(err, context.Canceled) || snap != nil {
		t.Errorf("Evaluate with a canceled context = %v, %v; want nil, context.Canceled", snap, err)
	}
}
