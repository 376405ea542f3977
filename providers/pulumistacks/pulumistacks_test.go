package pulumistacks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/pulumistacks"
	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

const passphrase = "correct horse battery staple"

// kubeconfig is the secret output of the fixtures: an object, as the EKS
// component returns it.
var kubeconfig = map[string]any{
	"apiVersion": "v1",
	"kind":       "Config",
	"clusters": []any{map[string]any{
		"name":    "demo",
		"cluster": map[string]any{"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0EK"},
	}},
	"users": []any{map[string]any{"name": "admin", "user": map[string]any{"token": "kube-secret-token"}}},
}

// plainOutputs are the plain outputs of the fixtures, one of each kind.
var plainOutputs = map[string]any{
	"clusterName": "demo",
	"nodeCount":   3,
	"ratio":       0.25,
	"public":      true,
	"subnetIds":   []any{"subnet-a", "subnet-b"},
	"tags":        map[string]any{"team": "platform", "cost": map[string]any{"center": 42}},
	"nothing":     nil,
}

// isolate gives the test an empty home and no Pulumi variables.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, k := range []string{"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE",
		"PULUMI_HOME", "PULUMI_CREDENTIALS_PATH", "PULUMI_API", "PULUMI_ACCESS_TOKEN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return home
}

// inputs builds the provider inputs for one stack named "s".
func inputs(t *testing.T, backend, stack string) map[string]esc.Value {
	t.Helper()
	in := map[string]any{"stacks": map[string]any{"s": map[string]any{"stack": stack}}}
	if backend != "" {
		in["backend"] = backend
	}
	v, err := esc.FromJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	return v.Value.(map[string]esc.Value)
}

// open opens the provider and returns the outputs of stack "s" and the
// files it reported.
func open(t *testing.T, p *pulumistacks.Provider, backend, stack string) (esc.Value, []string, error) {
	t.Helper()
	ctx, files := providers.WithFiles(context.Background())
	ctx, expiry := providers.WithExpiry(ctx)
	v, err := p.Open(ctx, inputs(t, backend, stack), nil)
	if !expiry.Earliest().IsZero() {
		t.Errorf("stack outputs reported an expiry: %v", expiry.Earliest())
	}
	if err != nil {
		return esc.Value{}, files.Paths(), err
	}
	return v.Value.(map[string]esc.Value)["s"], files.Paths(), nil
}

// plain returns v as plain JSON with secrets shown, and whether every
// value in it is secret and whether any is.
func plain(v esc.Value) (js any, allSecret, anySecret bool) {
	allSecret, anySecret = true, false
	var walk func(esc.Value)
	walk = func(v esc.Value) {
		allSecret = allSecret && v.Secret
		anySecret = anySecret || v.Secret
		switch x := v.Value.(type) {
		case []esc.Value:
			for _, e := range x {
				walk(e)
			}
		case map[string]esc.Value:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return v.ToJSON(false), allSecret, anySecret
}

// jsonOf normalizes a Go value to what JSON with json.Number decodes to.
func jsonOf(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPlainOutputs checks outputs against plainOutputs: equal, exact
// numbers, none secret.
func checkPlainOutputs(t *testing.T, got esc.Value) {
	t.Helper()
	js, _, anySecret := plain(got)
	if want := jsonOf(t, plainOutputs); !reflect.DeepEqual(js, want) {
		t.Errorf("outputs:\n got %v\nwant %v", js, want)
	}
	if anySecret {
		t.Error("plain outputs came out secret")
	}
	if n := got.Value.(map[string]esc.Value)["nodeCount"].Value; n != json.Number("3") {
		t.Errorf("nodeCount = %#v, want json.Number 3", n)
	}
}

func TestFileBackendLayouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  stacktest.Options
		setup func(t *testing.T, dir string) // after the fixture is written
	}{
		{name: "plain"},
		{name: "gzip", opts: stacktest.Options{Gzip: true}},
		{name: "old layout", opts: stacktest.Options{OldLayout: true}},
		{name: "old layout gzip", opts: stacktest.Options{OldLayout: true, Gzip: true}},
		{name: "project layout without meta.yaml", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ".pulumi", "meta.yaml")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "old layout with meta.yaml version 0", opts: stacktest.Options{OldLayout: true}, setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, ".pulumi", "meta.yaml"), []byte("version: 0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "newer gzip beats older json", opts: stacktest.Options{Gzip: true}, setup: func(t *testing.T, dir string) {
			// A stale uncompressed checkpoint with other outputs, older than the gzip one.
			stale, err := stacktest.Write(dir, "eks-cluster", "demo", map[string]any{"stale": true}, nil, "", stacktest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(stale, old, old); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			dir := t.TempDir()
			file, err := stacktest.Write(dir, "eks-cluster", "demo", plainOutputs, nil, "", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			got, files, err := open(t, &pulumistacks.Provider{}, "file://"+dir, "eks-cluster/demo")
			if err != nil {
				t.Fatal(err)
			}
			checkPlainOutputs(t, got)
			if !reflect.DeepEqual(files, []string{file}) {
				t.Errorf("reported files %v, want [%s]", files, file)
			}
		})
	}
}

// TestMissingStackIsWatched checks that a missing stack reports where its
// checkpoint would be, so that the cache evaluates again once it appears.
func TestMissingStackIsWatched(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	if _, err := stacktest.Write(dir, "app", "dev", map[string]any{"x": 1}, nil, "", stacktest.Options{}); err != nil {
		t.Fatal(err)
	}
	p := &pulumistacks.Provider{}
	_, files, err := open(t, p, "file://"+dir, "app/prod")
	if err == nil {
		t.Fatal("no error for a missing stack")
	}
	want := filepath.Join(dir, ".pulumi", "stacks", "app", "prod.json")
	if !reflect.DeepEqual(files, []string{want}) {
		t.Errorf("reported %v, want [%s]", files, want)
	}
	// Once written, it is read.
	if _, err := stacktest.Write(dir, "app", "prod", map[string]any{"x": 2}, nil, "", stacktest.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := open(t, p, "file://"+dir, "app/prod"); err != nil {
		t.Fatal(err)
	}
}

func TestStackRefForms(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	if _, err := stacktest.Write(dir, "net", "prod", map[string]any{"vpcId": "vpc-1"}, nil, "", stacktest.Options{}); err != nil {
		t.Fatal(err)
	}
	p := &pulumistacks.Provider{}
	for _, ref := range []string{"net/prod", "organization/net/prod"} {
		got, _, err := open(t, p, "file://"+dir, ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if js, _, _ := plain(got); !reflect.DeepEqual(js, map[string]any{"vpcId": "vpc-1"}) {
			t.Errorf("%s: outputs %v", ref, js)
		}
	}
}

func TestNeverUpdatedStackHasNoOutputs(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	file := filepath.Join(dir, ".pulumi", "stacks", "app", "dev.json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	// What `pulumi stack init` leaves: a checkpoint without a deployment.
	if err := os.WriteFile(file, []byte(`{"version":3,"checkpoint":{"stack":"organization/app/dev","latest":null}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := open(t, &pulumistacks.Provider{}, "file://"+dir, "app/dev")
	if err != nil {
		t.Fatal(err)
	}
	if js, _, _ := plain(got); !reflect.DeepEqual(js, map[string]any{}) {
		t.Errorf("outputs %v, want {}", js)
	}
}

func TestHomeExpansion(t *testing.T) {
	for _, tc := range []struct {
		url    string
		subdir string
	}{
		{url: "file://~", subdir: ""},
		{url: "file://~/state/pulumi", subdir: "state/pulumi"},
		{url: "file://~/state?no_tmp_dir=true", subdir: "state"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			home := isolate(t)
			dir := filepath.Join(home, tc.subdir)
			file, err := stacktest.Write(dir, "app", "dev", map[string]any{"url": "https://app"}, nil, "", stacktest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, files, err := open(t, &pulumistacks.Provider{}, tc.url, "app/dev")
			if err != nil {
				t.Fatal(err)
			}
			if js, _, _ := plain(got); !reflect.DeepEqual(js, map[string]any{"url": "https://app"}) {
				t.Errorf("outputs %v", js)
			}
			if !reflect.DeepEqual(files, []string{file}) {
				t.Errorf("reported %v, want [%s]", files, file)
			}
		})
	}
}

func TestDefaultBackend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, home, dir string) // dir holds the stack
		input string                               // backend input
		want  string                               // error substring; "" for success
	}{
		{name: "PULUMI_BACKEND_URL", setup: func(t *testing.T, home, dir string) {
			t.Setenv("PULUMI_BACKEND_URL", "file://"+dir)
		}},
		{name: "credentials.json current", setup: func(t *testing.T, home, dir string) {
			writeCreds(t, filepath.Join(home, ".pulumi"), "file://"+dir)
		}},
		{name: "PULUMI_BACKEND_URL before credentials.json", setup: func(t *testing.T, home, dir string) {
			writeCreds(t, filepath.Join(home, ".pulumi"), "file:///nonexistent/backend")
			t.Setenv("PULUMI_BACKEND_URL", "file://"+dir)
		}},
		{name: "input before PULUMI_BACKEND_URL", input: "DIR", setup: func(t *testing.T, home, dir string) {
			t.Setenv("PULUMI_BACKEND_URL", "file:///nonexistent/backend")
		}},
		{name: "PULUMI_HOME credentials", setup: func(t *testing.T, home, dir string) {
			ph := filepath.Join(home, "pulumi-home")
			t.Setenv("PULUMI_HOME", ph)
			writeCreds(t, ph, "file://"+dir)
		}},
		// (cloud_test.go reads stacks from a Pulumi Cloud; these fail before any request.)
		{name: "credentials current is Pulumi Cloud", want: "stack app/dev: http://127.0.0.1:1: not logged in", setup: func(t *testing.T, home, dir string) {
			writeCreds(t, filepath.Join(home, ".pulumi"), "http://127.0.0.1:1")
		}},
		{name: "nothing configured means Pulumi Cloud", want: "stack app/dev: https://api.pulumi.com: not logged in"},
		{name: "corrupt credentials.json", want: "credentials.json: not valid JSON", setup: func(t *testing.T, home, dir string) {
			d := filepath.Join(home, ".pulumi")
			os.MkdirAll(d, 0o700)
			os.WriteFile(filepath.Join(d, "credentials.json"), []byte(`{"accessTokens": {"x": "pul-secret-token"`), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolate(t)
			dir := t.TempDir()
			if _, err := stacktest.Write(dir, "app", "dev", map[string]any{"ok": true}, nil, "", stacktest.Options{}); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, home, dir)
			}
			input := strings.ReplaceAll(tc.input, "DIR", "file://"+dir)
			got, _, err := open(t, &pulumistacks.Provider{}, input, "app/dev")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "pul-secret-token") {
					t.Errorf("error quotes the credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if js, _, _ := plain(got); !reflect.DeepEqual(js, map[string]any{"ok": true}) {
				t.Errorf("outputs %v", js)
			}
		})
	}
}

// writeCreds writes a Pulumi CLI credentials file into dir.
func writeCreds(t *testing.T, dir, current string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"current":      current,
		"accessTokens": map[string]string{"https://api.pulumi.com": "pul-secret-token"},
	})
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
