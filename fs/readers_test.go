package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// run runs a real process with a bounded wait and returns its stdout.
func run(tb testing.TB, env []string, name string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &runError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type runError struct {
	err    error
	stderr string
}

func (e *runError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
func (e *runError) Unwrap() error { return e.err }

func mustRun(tb testing.TB, env []string, name string, args ...string) string {
	tb.Helper()
	out, err := run(tb, env, name, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// trickyDef has values a careless quoting would expand or break.
func trickyDef(marker string) string {
	return `values:
  environmentVariables:
    A: "it's \"quoted\" $(touch ` + marker + `) ` + "`touch " + marker + "`" + ` $HOME \\n\nsecond line"
    PLAIN: plain
  files:
    KUBECONFIG: |
      apiVersion: v1
      kind: Config
`
}

const trickyA = "it's \"quoted\" $(touch MARKER) `touch MARKER` $HOME \\n\nsecond line"

func TestShellSource(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "expanded")
	tm := mountT(t, map[string]string{"x.yaml": trickyDef(marker), "p/y.yaml": trickyDef(marker)})
	wantA := strings.ReplaceAll(trickyA, "MARKER", marker)
	for _, env := range []string{"x", "p/y"} {
		kc := tm.path(env, "files", "KUBECONFIG")
		want := wantA + "\n" + kc + "\nplain\n"
		for _, sh := range []struct{ name, dot string }{{"bash", "source"}, {"sh", "."}} {
			script := sh.dot + ` "$1" && printf '%s\n' "$A" "$KUBECONFIG" "$PLAIN"`
			out := mustRun(t, nil, sh.name, "-c", script, sh.name, tm.path(env, "env"))
			if out != want {
				t.Errorf("%s: %s %s printed\n%q\nwant\n%q", env, sh.name, sh.dot, out, want)
			}
			// the variable's file is there and readable by the shell
			out = mustRun(t, nil, sh.name, "-c", sh.dot+` "$1" && cat "$KUBECONFIG"`, sh.name, tm.path(env, "env"))
			if out != "apiVersion: v1\nkind: Config\n" {
				t.Errorf("%s: %s: cat $KUBECONFIG = %q", env, sh.name, out)
			}
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("sourcing %s ran a command substitution", env)
		}
	}
}

func TestKubectl(t *testing.T) {
	kubectl := needTool(t, "kubectl", "kubernetes-client")
	def := `values:
  cluster:
    host: 10.1.2.3
    name: test-cluster
    user: test-user
  files:
    KUBECONFIG:
      fn::toJSON:
        apiVersion: v1
        kind: Config
        clusters:
          - name: ${cluster.name}
            cluster:
              server: https://${cluster.host}:6443
        users:
          - name: ${cluster.user}
            user:
              token: t0ken
        contexts:
          - name: ${cluster.name}-ctx
            context:
              cluster: ${cluster.name}
              user: ${cluster.user}
        current-context: ${cluster.name}-ctx
`
	tm := mountT(t, map[string]string{"demos/cluster.yaml": def})
	kc := tm.path("demos", "cluster", "files", "KUBECONFIG")
	out := mustRun(t, []string{"KUBECONFIG=" + kc, "HOME=" + t.TempDir()}, kubectl, "config", "view", "--minify", "--raw")
	for _, want := range []string{
		"server: https://10.1.2.3:6443",
		"name: test-cluster",
		"name: test-user",
		"current-context: test-cluster-ctx",
		"token: t0ken",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl config view lacks %q:\n%s", want, out)
		}
	}
	// the same through the env file, as a user would do it
	out = mustRun(t, []string{"HOME=" + t.TempDir()}, "bash", "-c", `source "$1" && "$2" config current-context`, "bash", tm.path("demos", "cluster", "env"), kubectl)
	if strings.TrimSpace(out) != "test-cluster-ctx" {
		t.Errorf("kubectl config current-context after source = %q", out)
	}
}

func TestBrokenEnvironment(t *testing.T) {
	broken := "values:\n  a: ok\n  environmentVariables:\n    B: ${nope}\n"
	tm := mountT(t, map[string]string{"broken.yaml": broken, "fine.yaml": simpleDef, "p/imp.yaml": "imports:\n  - broken\nvalues:\n  x: 1\n"})
	for _, rel := range []string{"env", "values.json", "dotenv"} {
		_, err := readFile(t, tm.path("broken", rel))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("read broken/%s: %v, want EIO", rel, err)
		}
	}
	// bash gets an error too, not an empty environment
	if _, err := run(t, nil, "bash", "-c", `source "$1"`, "bash", tm.path("broken", "env")); err == nil {
		t.Errorf("bash sourced a broken environment without an error")
	}
	st := tm.statusOf("broken")
	if st.State != "error" {
		t.Errorf("status state %q, want error", st.State)
	}
	def := filepath.Join(tm.dir, "broken.yaml")
	if len(st.Diagnostics) == 0 {
		t.Fatalf("status has no diagnostics: %+v", st)
	}
	d := st.Diagnostics[0]
	if d.File != def || d.Line != 4 || d.Column <= 0 || !strings.Contains(d.Message, "nope") {
		t.Errorf("diagnostic %+v, want %s line 4 with a column, about nope", d, def)
	}
	loc := def + ":4:" + strconv.Itoa(d.Column)
	if !strings.Contains(st.Error, loc) {
		t.Errorf("status error %q lacks %q", st.Error, loc)
	}
	// the neighbour is fine, before and after
	if b := mustRead(t, tm.path("fine", "env")); string(b) != "export A='alpha'\n" {
		t.Errorf("fine/env = %q", b)
	}
	// an importer of the broken environment fails too, and says where
	if _, err := readFile(t, tm.path("p", "imp", "env")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read p/imp/env: %v, want EIO", err)
	}
	if st := tm.statusOf("p/imp"); st.State != "error" || !strings.Contains(st.Error, def) {
		t.Errorf("importer status: %+v", st)
	}
	// fixing it heals it through the mount
	tm.define("broken.yaml", "values:\n  environmentVariables:\n    B: fixed\n")
	eventually(t, watchLimit, "fixed environment", func() (bool, string) {
		b, err := readFile(t, tm.path("broken", "env"))
		return err == nil && string(b) == "export B='fixed'\n", string(b)
	})
}

// TestConcurrentFirstReaders: 64 readers arrive at an unevaluated
// environment at once, by five different names (the kernel merges
// concurrent lookups of one name, so one name alone would prove nothing),
// while its evaluation takes half a second: one evaluation serves them all.
func TestConcurrentFirstReaders(t *testing.T) {
	dir := t.TempDir()
	def := "values:\n  creds:\n    fn::open::token: {ttl: 1h, delay: 500ms, failIfExists: " + filepath.Join(dir, "nofail") + "}\n" +
		"  environmentVariables:\n    TOKEN: ${creds.token}\n  files:\n    TOKFILE: ${creds.token}\n    OTHER: other\n"
	tm := mountT(t, map[string]string{"x.yaml": def})
	rels := []string{"env", "dotenv", "values.json", "files/TOKFILE", "files/OTHER"}
	const readers = 64
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([][]byte, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = os.ReadFile(tm.path("x", rels[i%len(rels)]))
		}()
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("readers did not finish in 20s")
	}
	if n := tm.store.Evaluations(); n != 1 {
		t.Errorf("%d concurrent first readers by %d names caused %d evaluations, want 1", readers, len(rels), n)
	}
	snap := tm.snapshot("x")
	tok, _ := snap.File("TOKFILE")
	other, _ := snap.File("OTHER")
	want := map[string][]byte{"env": snap.Env, "dotenv": snap.Dotenv, "values.json": snap.ValuesJSON, "files/TOKFILE": tok.Content, "files/OTHER": other.Content}
	for i := range readers {
		if rel := rels[i%len(rels)]; errs[i] != nil || !bytes.Equal(results[i], want[rel]) {
			t.Errorf("reader %d of %s: %q %v", i, rel, results[i], errs[i])
		}
	}
}

func TestReadersAgree(t *testing.T) {
	// big enough for several reads and more than one page
	def := "values:\n  environmentVariables:\n    BIG: " + strings.Repeat("0123456789abcdef", 1000) + "\n    Q: \"it's\"\n"
	tm := mountT(t, map[string]string{"x.yaml": def})
	p := tm.path("x", "env")
	want := tm.snapshot("x").Env
	if len(want) < 3*4096 {
		t.Fatalf("env only %d bytes", len(want))
	}
	goRead := mustRead(t, p)
	if !bytes.Equal(goRead, want) {
		t.Errorf("os.ReadFile: %d bytes, differ from the snapshot's %d", len(goRead), len(want))
	}
	check := func(what, got string) {
		t.Helper()
		if got != string(want) {
			t.Errorf("%s: %d bytes, differ from the snapshot's %d", what, len(got), len(want))
		}
	}
	check("cat", mustRun(t, nil, "cat", p))
	check("tail -c", mustRun(t, nil, "tail", "-c", strconv.Itoa(len(want)), p))
	check("tail -c +1", mustRun(t, nil, "tail", "-c", "+1", p))
	check("head -c", mustRun(t, nil, "head", "-c", strconv.Itoa(len(want)+100), p))
	copied := filepath.Join(t.TempDir(), "env")
	mustRun(t, nil, "cp", p, copied)
	check("cp", string(mustRead(t, copied)))
	check("dd", mustRun(t, nil, "dd", "if="+p, "bs=1000", "status=none"))
	py := needTool(t, "python3", "python3") // the mmap reader
	mm := `import mmap, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    sys.stdout.buffer.write(m[:])
    m.close()
`
	check("python mmap", mustRun(t, nil, py, "-c", mm, p))
	mmPrivate := strings.Replace(mm, "prot=mmap.PROT_READ", "flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ", 1)
	check("python mmap private", mustRun(t, nil, py, "-c", mmPrivate, p))
}
