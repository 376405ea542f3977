package fs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const nobody = "65534"

// asNobody runs argv as uid/gid 65534 with no supplementary groups.
func asNobody(t *testing.T, argv ...string) (string, error) {
	t.Helper()
	return run(t, nil, "setpriv", append([]string{"--reuid", nobody, "--regid", nobody, "--clear-groups"}, argv...)...)
}

// traversable opens up the directories t.TempDir created above p (they are
// 0700), so that another uid is refused by the mount, not by the path.
func traversable(t *testing.T, p string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for d := filepath.Dir(p); strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// reachableMountpoint makes a mount point that other users can reach
// (a test of a denial must be refused by the mount, not by the path), in a
// parent where a test may put control files; it returns both.
func reachableMountpoint(t *testing.T) (parent, mnt string) {
	t.Helper()
	parent = t.TempDir()
	mnt = filepath.Join(parent, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	traversable(t, mnt)
	return parent, mnt
}

func TestOtherUserDenied(t *testing.T) {
	needRoot(t, "to switch to another uid")
	needTool(t, "setpriv", "util-linux")
	for _, allowOther := range []bool{false, true} {
		name := "allow_other"
		if !allowOther {
			name = "no allow_other"
		}
		t.Run(name, func(t *testing.T) {
			// the mount point's parent holds a world-readable control file
			parent, mnt := reachableMountpoint(t)
			control := filepath.Join(parent, "control")
			if err := os.WriteFile(control, []byte("control\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tm := mountT(t, map[string]string{"x.yaml": filesDef}, withMountpoint(mnt), withAllowOther(allowOther))
			// the owner reads it (and it is evaluated, so nothing but access stops nobody)
			mustRead(t, tm.path("x", "env"))

			// control: nobody reaches a readable file beside the mount point
			if out, err := asNobody(t, "cat", control); err != nil || out != "control\n" {
				t.Fatalf("control: nobody cannot read %s: %q %v", control, out, err)
			}
			for _, rel := range []string{"x/env", "x/dotenv", "x/values.json", "x/status", "x/files/KUBECONFIG"} {
				out, err := asNobody(t, "cat", tm.path(rel))
				if err == nil {
					t.Errorf("nobody read %s: %q", rel, out)
				} else if !strings.Contains(err.Error(), "Permission denied") {
					t.Errorf("nobody reading %s: %v, want Permission denied", rel, err)
				}
			}
			if out, err := asNobody(t, "ls", tm.mnt); err == nil {
				t.Errorf("nobody listed the mount: %q", out)
			}
		})
	}
}

// TestOwnerOtherThanMounter mounts for uid 65534 with allow_other: that uid
// reads, another non-root uid does not.
func TestOwnerOtherThanMounter(t *testing.T) {
	needRoot(t, "to switch to another uid")
	needTool(t, "setpriv", "util-linux")
	_, mnt := reachableMountpoint(t)
	tm := mountT(t, map[string]string{"x.yaml": simpleDef}, withMountpoint(mnt), withAllowOther(true), withOwner(65534, 65534))
	if out, err := asNobody(t, "cat", tm.path("x", "env")); err != nil || out != "export A='alpha'\n" {
		t.Errorf("the owner (65534) reads x/env: %q %v", out, err)
	}
	out, err := run(t, nil, "setpriv", "--reuid", "65533", "--regid", "65533", "--clear-groups", "cat", tm.path("x", "env"))
	if err == nil {
		t.Errorf("uid 65533 read x/env of uid 65534: %q", out)
	}
}

// asCapable runs argv as uid/gid 65534 holding CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH: default_permissions lets such a caller through, so
// only escfs's own uid check can stop it.
func asCapable(t *testing.T, argv ...string) (string, error) {
	t.Helper()
	caps := "+dac_override,+dac_read_search"
	return run(t, nil, "setpriv", append([]string{"--reuid", nobody, "--regid", nobody, "--clear-groups",
		"--inh-caps", caps, "--ambient-caps", caps}, argv...)...)
}

// TestCapableOtherUserDenied: with allow_other, a non-root caller holding
// CAP_DAC_OVERRIDE passes the kernel's mode checks; escfs refuses it in
// every operation that reveals or evaluates anything, and nothing the
// kernel cached for the owner is served to it.
func TestCapableOtherUserDenied(t *testing.T) {
	needRoot(t, "to switch to another uid")
	needTool(t, "setpriv", "util-linux")
	parent, mnt := reachableMountpoint(t)
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	tm := mountT(t, map[string]string{"x.yaml": filesDef, "y.yaml": simpleDef}, withMountpoint(mnt), withAllowOther(true))
	// control: the capabilities work (a 0400 root file beside the mount)
	if out, err := asCapable(t, "cat", secret); err != nil || out != "root only\n" {
		t.Fatalf("control: the capable caller cannot read %s: %q %v", secret, out, err)
	}
	// the owner reads and stats x, so the kernel has its entries
	mustRead(t, tm.path("x", "env"))
	mustRead(t, tm.path("x", "files", "KUBECONFIG"))
	before := tm.store.Evaluations()
	for _, argv := range [][]string{
		{"cat", tm.path("x", "env")},
		{"cat", tm.path("x", "files", "KUBECONFIG")},
		{"stat", "-c", "%s", tm.path("x", "env")},
		{"stat", "-c", "%s", tm.path("x", "status")},
		{"ls", tm.path("x", "files")},
		{"ls", tm.path("x")},
		{"ls", tm.mnt},
		{"stat", "-c", "%s", tm.path("y", "env")}, // would evaluate y
		{"cat", tm.path("y", "env")},
	} {
		if out, err := asCapable(t, argv...); err == nil {
			t.Errorf("%v as a capable other user: %q, want it refused", argv, out)
		}
	}
	if after := tm.store.Evaluations(); after != before {
		t.Errorf("the capable other user caused %d evaluations", after-before)
	}
}
