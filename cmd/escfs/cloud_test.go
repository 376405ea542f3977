package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/cloud/cloudtest"
	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/internal/testutil"
)

// loginHint is what every refusal of the credentials must say.
const loginHint = "run `esc login` or set PULUMI_ACCESS_TOKEN"

// cloudDefs are the environments of org acme in the simulation.
var cloudDefs = map[string]string{
	"infra/base": "values:\n  region: us-west-2\n",
	"infra/aws": `imports: [infra/base]
values:
  aws:
    login:
      fn::open::test-login:
        ttl: 1h
  environmentVariables:
    AWS_ACCESS_KEY_ID: ${aws.login.accessKeyId}
    AWS_SECRET_ACCESS_KEY: ${aws.login.secretAccessKey}
    AWS_REGION: ${region}
  files:
    KUBECONFIG: "apiVersion: v1\nkind: Config\n"
`,
	"app":    "values:\n  environmentVariables:\n    APP: one\n",
	"broken": "values:\n  x: 1\n  y: ${nope}\n",
}

// cloudWorld starts a simulation holding cloudDefs in acme (and "solo" in
// the user's own organization, its default) and points the Pulumi
// variables of this test at it, with an empty Pulumi home.
func cloudWorld(t *testing.T) *cloudtest.Server {
	t.Helper()
	sim := cloudtest.Start(t, cloudtest.Options{DefaultOrg: "alice"})
	for name, def := range cloudDefs {
		sim.Put("acme", name, def)
	}
	sim.Put("alice", "solo", "values: {x: 1}\n")
	isolatePulumi(t)
	t.Setenv("PULUMI_BACKEND_URL", sim.URL)
	t.Setenv("PULUMI_ACCESS_TOKEN", sim.Token())
	return sim
}

// isolatePulumi gives the test an empty Pulumi home (no credentials.json)
// and none of the variables that choose a Pulumi account or an escfs
// directory. HOME stays: the Go tools keep their caches there.
func isolatePulumi(t *testing.T) {
	t.Helper()
	for _, k := range []string{"PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN", "PULUMI_API",
		"PULUMI_CREDENTIALS_PATH", "PULUMI_CONSOLE_DOMAIN", "ESCFS_DIR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("PULUMI_HOME", t.TempDir())
}

func TestCloudLs(t *testing.T) {
	sim := cloudWorld(t)
	sim.PageSize(2)
	want := "app\nbroken\ninfra/aws\ninfra/base\n"
	for _, args := range [][]string{
		{"--cloud", "acme", "ls"},
		{"--cloud=acme", "ls"},
		{"--max-nesting", "10", "--cloud", "acme", "ls"},
		{"ls", "--cloud=acme"},
	} {
		r := escfsCLI(t, args...)
		if r.code != 0 || r.stdout != want {
			t.Errorf("escfs %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
		}
	}
	// Without an organization: the service's default for the user.
	if r := escfsCLI(t, "--cloud", "ls"); r.code != 0 || r.stdout != "solo\n" {
		t.Errorf("escfs --cloud ls: exit %d, stdout %q, stderr %q; want the default organization's", r.code, r.stdout, r.stderr)
	}
	if n := sim.Requests(cloudtest.Open) + sim.Requests(cloudtest.Definition) + sim.Requests(cloudtest.Revision); n != 0 {
		t.Errorf("ls made %d requests other than listing", n)
	}
	if r := escfsCLI(t, "--cloud", "nosuchorg", "ls"); r.code == 0 || !strings.Contains(r.stderr, "nosuchorg") || !strings.Contains(r.stderr, "404") {
		t.Errorf("ls of an unknown organization: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCloudFlags(t *testing.T) {
	cloudWorld(t)
	dir := filetree.Write(t, "", map[string]string{"prod.yaml": "values: {a: 1}\n"})
	for _, c := range []struct {
		args []string
		env  string // ESCFS_DIR
		want string
	}{
		{[]string{"--cloud", "acme", "--dir", dir, "ls"}, "", "--cloud and --dir"},
		{[]string{"--dir", dir, "--cloud=acme", "ls"}, "", "--cloud and --dir"},
		{[]string{"--cloud", "acme", "ls"}, dir, "$ESCFS_DIR"},
		{[]string{"--dir", dir, "--poll", "5s", "ls"}, "", "--poll applies to Pulumi Cloud"},
		{[]string{"--dir", dir, "--open-duration", "5m", "open", "prod"}, "", "--open-duration applies to Pulumi Cloud"},
		{[]string{"--cloud", "acme", "--open-duration", "0s", "open", "app"}, "", "--open-duration 0s: must be positive"},
		{[]string{"--cloud", "acme", "--poll", "-1s", "ls"}, "", "--poll -1s: must be positive"},
		{[]string{"--cloud=../etc", "ls"}, "", "invalid Pulumi Cloud organization"},
	} {
		if c.env != "" {
			t.Setenv("ESCFS_DIR", c.env)
		} else {
			os.Unsetenv("ESCFS_DIR")
		}
		r := escfsCLI(t, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("escfs %s: exit %d, stderr %q; want a refusal saying %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	os.Unsetenv("ESCFS_DIR")
	// A command line after run's ENV is the command's, --cloud included.
	if got := cloudArgs(newRootCommand(), []string{"--cloud", "acme", "run", "app", "--", "tool", "--cloud", "x"}); !slices.Equal(got,
		[]string{"--cloud=acme", "run", "app", "--", "tool", "--cloud", "x"}) {
		t.Errorf("cloudArgs: %q", got)
	}
	if got := cloudArgs(newRootCommand(), []string{"--cloud", "check", "app"}); !slices.Equal(got, []string{"--cloud", "check", "app"}) {
		t.Errorf("cloudArgs took a command for an organization: %q", got)
	}
	if got := cloudArgs(newRootCommand(), []string{"-d", "x", "--cloud", "acme", "ls"}); !slices.Equal(got, []string{"-d", "x", "--cloud=acme", "ls"}) {
		t.Errorf("cloudArgs after -d DIR: %q", got)
	}
}

func TestCloudOpen(t *testing.T) {
	sim := cloudWorld(t)
	r := escfsCLI(t, "--cloud", "acme", "--open-duration", "10m", "open", "infra/aws")
	if r.code != 0 {
		t.Fatalf("open: exit %d, stderr %q", r.code, r.stderr)
	}
	var values struct {
		AWS struct {
			Login struct {
				AccessKeyID, SecretAccessKey, Expiration string
			}
		}
		Region string
	}
	if err := json.Unmarshal([]byte(r.stdout), &values); err != nil {
		t.Fatalf("open prints no JSON: %v\n%s", err, r.stdout)
	}
	if !strings.HasPrefix(values.AWS.Login.AccessKeyID, "ASIATEST") || values.AWS.Login.SecretAccessKey == "" || values.Region != "us-west-2" {
		t.Errorf("values %+v", values)
	}
	if d := sim.OpenDurations(); len(d) != 1 || d[0] != 10*time.Minute {
		t.Errorf("open durations %v, want [10m]", d)
	}
	want := map[cloudtest.Endpoint]int{cloudtest.List: 1, cloudtest.Open: 1, cloudtest.Session: 1}
	if got := sim.Counts(); !mapsEqual(got, want) {
		t.Errorf("requests of one open: %v, want %v", got, want)
	}

	r = escfsCLI(t, "--cloud", "acme", "open", "infra/aws", "aws.login.accessKeyId", "-f", "string")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ASIATEST") {
		t.Errorf("open PATH -f string: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	r = escfsCLI(t, "--cloud", "acme", "open", "app", "-f", "shell")
	if r.code != 0 || !strings.Contains(r.stdout, "export APP='one'\n") || !strings.Contains(r.stdout, "export ESCFS_EXPIRES_AT=") {
		t.Errorf("open -f shell: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	r = escfsCLI(t, "--cloud", "acme", "open", "nosuch")
	if r.code == 0 || !strings.Contains(r.stderr, `environment "nosuch" not found in Pulumi Cloud org acme`) {
		t.Errorf("open of an unknown environment: exit %d, %q", r.code, r.stderr)
	}
	r = escfsCLI(t, "--cloud", "acme", "open", "broken")
	if r.code != 1 || !strings.Contains(r.stderr, sim.URL+"/api/esc/environments/acme/default/broken:3:") {
		t.Errorf("open of an environment with errors: exit %d, stderr %q; want its located diagnostic", r.code, r.stderr)
	}
}

// mapsEqual compares request counts.
func mapsEqual(a, b map[cloudtest.Endpoint]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCloudRun(t *testing.T) {
	cloudWorld(t)
	t.Setenv("XDG_RUNTIME_DIR", testutil.MemTempDir(t))
	r := escfsCLI(t, "--cloud", "acme", "run", "infra/aws", "--", "sh", "-c", `printf '%s %s ' "$AWS_REGION" "$AWS_SECRET_ACCESS_KEY"; cat "$KUBECONFIG"`)
	if r.code != 0 || r.stdout != "us-west-2 [secret] apiVersion: v1\nkind: Config\n" {
		t.Errorf("run: exit %d, stdout %q, stderr %q; want the region, the secret redacted and the file", r.code, r.stdout, r.stderr)
	}
	if r := escfsCLI(t, "--cloud", "acme", "run", "broken", "--", "true"); r.code != 1 || !strings.Contains(r.stderr, "unknown property") {
		t.Errorf("run of an environment with errors: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCloudCheck(t *testing.T) {
	sim := cloudWorld(t)
	r := escfsCLI(t, "--cloud", "acme", "check")
	if r.code != 1 {
		t.Errorf("check with a broken environment: exit %d", r.code)
	}
	for _, want := range []string{"ok  app\n", "FAIL broken (1 error)\n", "ok  infra/aws\n", "ok  infra/base\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("check stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, sim.URL+"/api/esc/environments/acme/default/broken:3:") || !strings.Contains(r.stdout, "nope") {
		t.Errorf("check stdout %q: want broken's located diagnostic", r.stdout)
	}
	if r := escfsCLI(t, "--cloud", "acme", "check", "app", "infra/aws"); r.code != 0 || r.stderr != "ok  app\nok  infra/aws\n" {
		t.Errorf("check app infra/aws: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestCloudCredentials: no token, a refused token and a forbidden
// environment all say what to do, and the token never shows.
func TestCloudCredentials(t *testing.T) {
	sim := cloudWorld(t)
	os.Unsetenv("PULUMI_ACCESS_TOKEN")
	r := escfsCLI(t, "--cloud", "acme", "ls")
	if r.code == 0 || !strings.Contains(r.stderr, "esc login") || !strings.Contains(r.stderr, "PULUMI_ACCESS_TOKEN") {
		t.Errorf("ls without a token: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Setenv("PULUMI_ACCESS_TOKEN", "pul-0123456789abcdef-wrong")
	for _, args := range [][]string{{"ls"}, {"open", "app"}, {"check", "app"}, {"run", "app", "--", "true"}} {
		r := escfsCLI(t, append([]string{"--cloud", "acme"}, args...)...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, loginHint) || strings.Contains(r.stdout+r.stderr, "0123456789abcdef") {
			t.Errorf("%s with a wrong token: exit %d, %q %q; want the hint %q, never the token", args[0], r.code, r.stdout, r.stderr, loginHint)
		}
	}
	t.Setenv("PULUMI_ACCESS_TOKEN", sim.Token())
	sim.Forbid("acme", "app", true)
	r = escfsCLI(t, "--cloud", "acme", "open", "app")
	if r.code != 1 || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, loginHint) || strings.Contains(r.stderr, sim.Token()) {
		t.Errorf("open of a forbidden environment: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCloudCompletion(t *testing.T) {
	cloudWorld(t)
	r := escfsCLI(t, "__complete", "--cloud", "acme", "open", "infra/")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "infra/aws\ninfra/base\n:") {
		t.Errorf("completion of environment names: exit %d, %q", r.code, r.stdout)
	}
	r = escfsCLI(t, "__complete", "--cloud", "acme", "open", "infra/aws", "")
	for _, want := range []string{"region\n", "aws.login\n", "environmentVariables.AWS_REGION\n", "files.KUBECONFIG\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion of infra/aws's paths lacks %q (its own and its import's):\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "accessKeyId") {
		t.Errorf("completion offers what fn::open returns:\n%s", r.stdout)
	}
}

// TestCloudMount mounts a Pulumi Cloud organization with the real binary
// and a real FUSE mount: the tree, `source env` in bash, files/, status,
// a new revision on the next read after a poll, and a new environment.
func TestCloudMount(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
	sim := cloudWorld(t)
	mnt := t.TempDir()
	escfstest.DetachAll(t, mnt)
	p := escfstest.Start(t, escfstest.Options{}, "--cloud", "acme", "--poll", "200ms", "mount", mnt)
	p.WaitReadable(t, filepath.Join(mnt, "app", "status"))
	if got := sim.Requests(cloudtest.Open); got != 0 {
		t.Errorf("%d opens before anything was read", got)
	}
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"app", "broken", "infra"}) {
		t.Errorf("mount root %v, want app broken infra", names)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := `set -e; source "$MNT/infra/aws/env"; printf '%s|%s|%s|' "$AWS_REGION" "$KUBECONFIG" "$ESCFS_EXPIRES_AT"; cat "$KUBECONFIG"; case "$AWS_ACCESS_KEY_ID" in ASIATEST*) echo ok;; esac`
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(os.Environ(), "MNT="+mnt)
	out, err := cmd.CombinedOutput()
	fields := strings.SplitN(string(out), "|", 4)
	if err != nil || len(fields) != 4 || fields[0] != "us-west-2" || fields[1] != filepath.Join(mnt, "infra/aws/files/KUBECONFIG") ||
		fields[2] == "" || fields[3] != "apiVersion: v1\nkind: Config\nok\n" {
		t.Fatalf("bash -c 'source MNT/infra/aws/env': %v\n%s", err, out)
	}

	var st struct {
		State, Definition string
		ExpiresAt         *time.Time
	}
	b, err := escfstest.Read(filepath.Join(mnt, "infra", "aws", "status"), 5*time.Second)
	if err != nil || json.Unmarshal(b, &st) != nil || st.State != "ok" || st.ExpiresAt == nil ||
		st.Definition != sim.URL+"/api/esc/environments/acme/infra/aws" {
		t.Errorf("status %s (%v)", b, err)
	}
	if b, err := escfstest.Read(filepath.Join(mnt, "broken", "env"), 5*time.Second); err == nil {
		t.Errorf("env of a broken environment: %q, want EIO", b)
	}

	// A new revision of the import shows on a read after the next poll.
	sim.Put("acme", "infra/base", "values:\n  region: eu-central-1\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := escfstest.Read(filepath.Join(mnt, "infra", "aws", "env"), 5*time.Second)
		if err == nil && strings.Contains(string(b), "export AWS_REGION='eu-central-1'\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("infra/aws/env after infra/base's new revision: %q %v\n%s", b, err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A new environment appears.
	sim.Put("acme", "fresh", "values:\n  environmentVariables:\n    F: new\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := escfstest.Read(filepath.Join(mnt, "fresh", "env"), 5*time.Second); err == nil && string(b) != "" {
			if !strings.HasPrefix(string(b), "export F='new'\n") {
				t.Errorf("fresh/env %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fresh did not appear\n%s", p.Log())
		}
	}
	if err := p.Signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("escfs exited with %v after SIGTERM\n%s", err, p.Log())
	}
	if strings.Contains(p.Log(), sim.Token()) {
		t.Error("the log holds the token")
	}
	for _, h := range sim.AuthHeaders() {
		if h != "token "+sim.Token() {
			t.Errorf("a request carried Authorization %q", h)
		}
	}
}

// TestCloudLongNames: an environment (or project) name too long to be a
// file name is left out, with a warning, by ls and by the mount, whose
// listings keep working (today's kernel fails a whole readdir with EIO at
// such a name).
func TestCloudLongNames(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
	sim := cloudWorld(t)
	long := strings.Repeat("x", 5000)
	sim.Put("acme", long, "values: {x: 1}\n")
	sim.Put("acme", long+"/env", "values: {x: 1}\n")
	sim.Put("acme", "infra/"+long, "values: {x: 1}\n")
	r := escfsCLI(t, "--cloud", "acme", "ls")
	if r.code != 0 || r.stdout != "app\nbroken\ninfra/aws\ninfra/base\n" || strings.Count(r.stderr, "environment left out") != 3 ||
		!strings.Contains(r.stderr, "5000 bytes long, over the 255") || strings.Contains(r.stderr, long) {
		t.Fatalf("ls: exit %d\nstdout:\n%s\nstderr:\n%.2000s", r.code, r.stdout, r.stderr)
	}

	mnt := t.TempDir()
	escfstest.DetachAll(t, mnt)
	p := escfstest.Start(t, escfstest.Options{}, "--cloud", "acme", "mount", mnt)
	p.WaitReadable(t, filepath.Join(mnt, "app", "status"))
	for dir, want := range map[string][]string{mnt: {"app", "broken", "infra"}, filepath.Join(mnt, "infra"): {"aws", "base"}} {
		entries, err := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("ReadDir(%s) = %v, %v; want %v", dir, names, err, want)
		}
	}
	if !strings.Contains(p.Log(), "environment left out") {
		t.Errorf("the mount's log has no warning:\n%.2000s", p.Log())
	}
}
