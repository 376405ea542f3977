package pulumistacks_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers/pulumistacks"
	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

// secretBackend is a backend directory holding eks-cluster/demo with plain
// outputs and kubeconfig and adminPassword as secret outputs, encrypted
// under passphrase. It is made once: deriving the key takes a second.
var secretBackend = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pulumistacks-secrets-")
	if err != nil {
		return "", err
	}
	_, err = stacktest.Write(dir, "eks-cluster", "demo", map[string]any{"clusterName": "demo"},
		map[string]any{"kubeconfig": kubeconfig, "adminPassword": "hunter2-admin", "replicas": 5},
		passphrase, stacktest.Options{})
	return dir, err
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := secretBackend(); err == nil && strings.Contains(dir, "pulumistacks-secrets-") {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// checkSecretOutputs checks the outputs of the secret fixture.
func checkSecretOutputs(t *testing.T, got esc.Value) {
	t.Helper()
	outs := got.Value.(map[string]esc.Value)
	if js, all, _ := plain(outs["kubeconfig"]); !all || !reflect.DeepEqual(js, jsonOf(t, kubeconfig)) {
		t.Errorf("kubeconfig = %v (all secret: %v), want the object, all secret", js, all)
	}
	if v := outs["adminPassword"]; v.Value != "hunter2-admin" || !v.Secret {
		t.Errorf("adminPassword = %#v, want secret hunter2-admin", v)
	}
	if v := outs["replicas"]; v.Value != json.Number("5") || !v.Secret {
		t.Errorf("replicas = %#v, want secret 5", v)
	}
	if v := outs["clusterName"]; v.Value != "demo" || v.Secret {
		t.Errorf("clusterName = %#v, want plain demo", v)
	}
}

func TestSecretOutputs(t *testing.T) {
	dir, err := secretBackend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
	}{
		{name: "PULUMI_CONFIG_PASSPHRASE", setup: func(t *testing.T) {
			t.Setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
		}},
		{name: "PULUMI_CONFIG_PASSPHRASE_FILE", setup: func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "passphrase")
			if err := os.WriteFile(f, []byte(passphrase+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PULUMI_CONFIG_PASSPHRASE_FILE", f)
		}},
		{name: "PULUMI_CONFIG_PASSPHRASE before the file", setup: func(t *testing.T) {
			t.Setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
			t.Setenv("PULUMI_CONFIG_PASSPHRASE_FILE", filepath.Join(t.TempDir(), "missing"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			tc.setup(t)
			got, _, err := open(t, &pulumistacks.Provider{}, "file://"+dir, "eks-cluster/demo")
			if err != nil {
				t.Fatal(err)
			}
			checkSecretOutputs(t, got)
		})
	}
}

func TestPlaintextSecretsNeedNoPassphrase(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	if _, err := stacktest.Write(dir, "eks-cluster", "demo", map[string]any{"clusterName": "demo"},
		map[string]any{"kubeconfig": kubeconfig, "adminPassword": "hunter2-admin", "replicas": 5},
		"", stacktest.Options{PlaintextSecrets: true}); err != nil {
		t.Fatal(err)
	}
	got, _, err := open(t, &pulumistacks.Provider{}, "file://"+dir, "eks-cluster/demo")
	if err != nil {
		t.Fatal(err)
	}
	checkSecretOutputs(t, got)
}

func TestStacksWithoutSecretsNeedNoPassphrase(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	// A passphrase stack (with a secrets provider) whose outputs are all plain.
	if _, err := stacktest.Write(dir, "app", "dev", map[string]any{"x": "y"}, nil, passphrase, stacktest.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := open(t, &pulumistacks.Provider{}, "file://"+dir, "app/dev"); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	secretDir, err := secretBackend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (backend, stack string) // dir is a backend with app/dev
		want  []string                                               // substrings of the error
	}{
		{
			name: "wrong passphrase",
			setup: func(t *testing.T, dir string) (string, string) {
				t.Setenv("PULUMI_CONFIG_PASSPHRASE", "not the passphrase")
				return "file://" + secretDir, "eks-cluster/demo"
			},
			want: []string{"stack eks-cluster/demo", filepath.Join(secretDir, ".pulumi/stacks/eks-cluster/demo.json"), "incorrect passphrase"},
		},
		{
			name: "missing passphrase",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + secretDir, "eks-cluster/demo"
			},
			want: []string{"stack eks-cluster/demo", "demo.json", "is secret", "no passphrase: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"},
		},
		{
			name: "unreadable passphrase file",
			setup: func(t *testing.T, dir string) (string, string) {
				t.Setenv("PULUMI_CONFIG_PASSPHRASE_FILE", filepath.Join(dir, "no-such-file"))
				return "file://" + secretDir, "eks-cluster/demo"
			},
			want: []string{"stack eks-cluster/demo", "PULUMI_CONFIG_PASSPHRASE_FILE: cannot read", "no-such-file"},
		},
		{
			name: "missing stack",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + dir, "app/prod"
			},
			want: []string{"stack app/prod: stack not found in backend file://DIR", "DIR/.pulumi/stacks/app/prod.json[.gz]"},
		},
		{
			name: "missing project",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + dir, "other/dev"
			},
			want: []string{"stack other/dev: stack not found", "other/dev.json[.gz]"},
		},
		{
			name: "missing backend directory",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + filepath.Join(dir, "nope"), "app/dev"
			},
			want: []string{"directory DIR/nope does not exist"},
		},
		{
			name: "corrupt JSON",
			setup: func(t *testing.T, dir string) (string, string) {
				writeFile(t, filepath.Join(dir, ".pulumi/stacks/app/dev.json"), `{"version": 3, "checkpoint": {"latest": `)
				return "file://" + dir, "app/dev"
			},
			want: []string{"stack app/dev", "DIR/.pulumi/stacks/app/dev.json: corrupt checkpoint: invalid JSON"},
		},
		{
			name: "corrupt gzip",
			setup: func(t *testing.T, dir string) (string, string) {
				os.Remove(filepath.Join(dir, ".pulumi/stacks/app/dev.json"))
				writeFile(t, filepath.Join(dir, ".pulumi/stacks/app/dev.json.gz"), "\x1f\x8b\x08\x00garbage")
				return "file://" + dir, "app/dev"
			},
			want: []string{"stack app/dev", "dev.json.gz", "corrupt checkpoint: gzip"},
		},
		{
			name: "unknown checkpoint version",
			setup: func(t *testing.T, dir string) (string, string) {
				writeFile(t, filepath.Join(dir, ".pulumi/stacks/app/dev.json"), `{"version": 99, "checkpoint": {}}`)
				return "file://" + dir, "app/dev"
			},
			want: []string{"stack app/dev", "checkpoint version 99 is not supported"},
		},
		{
			name: "corrupt meta.yaml",
			setup: func(t *testing.T, dir string) (string, string) {
				writeFile(t, filepath.Join(dir, ".pulumi/meta.yaml"), "versio: [")
				return "file://" + dir, "app/dev"
			},
			want: []string{"stack app/dev", "meta.yaml: corrupt backend metadata"},
		},
		{
			name: "legacy stack of another project",
			setup: func(t *testing.T, dir string) (string, string) {
				legacy := t.TempDir()
				if _, err := stacktest.Write(legacy, "app", "dev", map[string]any{"x": 1}, nil, "", stacktest.Options{OldLayout: true}); err != nil {
					t.Fatal(err)
				}
				return "file://" + legacy, "other/dev"
			},
			want: []string{"stack other/dev", "dev.json", `the checkpoint there is of project "app", not "other"`},
		},
		{
			name: "stack without project",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + dir, "dev"
			},
			want: []string{`stack "dev": want a project-qualified name`},
		},
		{
			name: "other organization",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + dir, "acme/app/dev"
			},
			want: []string{`stack "acme/app/dev": self-managed backends have no organizations`},
		},
		{
			name: "path traversal",
			setup: func(t *testing.T, dir string) (string, string) {
				return "file://" + dir, "../dev"
			},
			want: []string{`stack "../dev": project`},
		},
		{
			name: "unsupported scheme",
			setup: func(t *testing.T, dir string) (string, string) {
				return "azblob://container", "app/dev"
			},
			want: []string{`backend "azblob://container": unsupported`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			dir := t.TempDir()
			if _, err := stacktest.Write(dir, "app", "dev", map[string]any{"x": 1}, nil, "", stacktest.Options{}); err != nil {
				t.Fatal(err)
			}
			backend, stack := tc.setup(t, dir)
			_, _, err := open(t, &pulumistacks.Provider{}, backend, stack)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "pulumi-stacks: ") || strings.Contains(msg, "\n") {
				t.Errorf("want one line starting with pulumi-stacks: %q", msg)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "DIR", dir)
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, secret := range []string{passphrase, "not the passphrase", "hunter2-admin", "kube-secret-token"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error reveals %q: %s", secret, msg)
				}
			}
		})
	}
}

// writeFile writes content to path, creating directories.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
