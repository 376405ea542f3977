package eval_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/providers"
)

// writeFile writes a definition under dir, creating parent directories.
func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func envVar(t *testing.T, s *eval.Store, name, key string) string {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), evaltest.Name(t, name))
	if err != nil {
		t.Fatalf("snapshot %s: %v", name, err)
	}
	for _, v := range snap.Vars {
		if v.Name == key {
			return v.Value
		}
	}
	t.Fatalf("%s: no variable %s", name, key)
	return ""
}

func TestStoreConcurrentFirstReadersShareOneEvaluation(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "prod.yaml", "values:\n  environmentVariables:\n    A: one\n")
	s := evaltest.NewStore(t, dir)
	var wg sync.WaitGroup
	snaps := make([]*eval.Snapshot, 64)
	for i := range snaps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snap, err := s.Snapshot(context.Background(), evaltest.Name(t, "prod"))
			if err != nil {
				t.Error(err)
			}
			snaps[i] = snap
		}()
	}
	wg.Wait()
	if got := s.Evaluations(); got != 1 {
		t.Fatalf("evaluations = %d, want 1", got)
	}
	for _, snap := range snaps[1:] {
		if snap != snaps[0] {
			t.Fatal("readers got different snapshots")
		}
	}
}

func TestStoreStatusNeverEvaluates(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "prod.yaml", "values:\n  a: 1\n")
	writeFile(t, dir, "bad.yaml", "values:\n  a: ${nope}\n")
	s := evaltest.NewStore(t, dir)
	st, err := s.Status(evaltest.Name(t, "prod"))
	if err != nil || st.State != eval.StateUnevaluated || s.Evaluations() != 0 {
		t.Fatalf("status = %+v, %v, evaluations %d", st, err, s.Evaluations())
	}
	if _, err := s.Snapshot(context.Background(), evaltest.Name(t, "prod")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(evaltest.Name(t, "prod")); st.State != eval.StateOK || st.EvaluatedAt == nil {
		t.Fatalf("after evaluation: %+v", st)
	}
	_, err = s.Snapshot(context.Background(), evaltest.Name(t, "bad"))
	var derr *eval.DiagnosticsError
	if !errors.As(err, &derr) {
		t.Fatalf("bad: err = %v, want diagnostics", err)
	}
	st, _ = s.Status(evaltest.Name(t, "bad"))
	if st.State != eval.StateError || len(st.Diagnostics) == 0 || st.Diagnostics[0].Line != 2 {
		t.Fatalf("bad status = %+v", st)
	}
	if _, err := s.Snapshot(context.Background(), evaltest.Name(t, "missing")); !errors.Is(err, eval.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestStoreRescanDropsImporters(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "base/common.yaml", "values:\n  region: us-east-1\n")
	writeFile(t, dir, "app.yaml", "imports: [base/common]\nvalues:\n  environmentVariables:\n    REGION: ${region}\n")
	writeFile(t, dir, "other.yaml", "values:\n  environmentVariables:\n    X: x\n")
	var src *evaltest.Manual
	s := evaltest.NewStore(t, dir, evaltest.Watching, func(c *evaltest.Config) {
		src = &evaltest.Manual{Source: &c.Source}
		c.Store.Source = src
	})
	if got := envVar(t, s, "app", "REGION"); got != "us-east-1" {
		t.Fatalf("REGION = %q", got)
	}
	envVar(t, s, "other", "X")
	var changes []eval.Change
	s.Subscribe(func(c eval.Change) { changes = append(changes, c) })

	// A change the listing cannot show (a Cloud revision, an event on a
	// file whose size and times stayed): the source names it.
	if err := src.Rescan(evaltest.Name(t, "base/common")); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Tree != nil || len(changes[0].Envs) != 1 || changes[0].Envs[0] != evaltest.Name(t, "app") {
		t.Fatalf("changes = %+v, want app dropped only", changes)
	}
	envVar(t, s, "app", "REGION")
	changes = nil

	writeFile(t, dir, "base/common.yaml", "values:\n  region: eu-west-1\n")
	if err := src.Rescan(evaltest.Name(t, "base/common")); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Tree != nil || len(changes[0].Envs) != 1 || changes[0].Envs[0] != evaltest.Name(t, "app") {
		t.Fatalf("changes = %+v, want app dropped only", changes)
	}
	before := s.Evaluations()
	if got := envVar(t, s, "app", "REGION"); got != "eu-west-1" {
		t.Fatalf("REGION after edit = %q", got)
	}
	envVar(t, s, "other", "X")
	if got := s.Evaluations() - before; got != 1 {
		t.Fatalf("re-evaluations = %d, want 1 (other stays cached)", got)
	}
}

func TestStoreWatchSeesEditsCreatesRenamesDeletes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "prod.yaml", "values:\n  environmentVariables:\n    V: one\n")
	s := evaltest.NewStore(t, dir)
	if err := s.Watch(); err != nil {
		t.Fatal(err)
	}
	changed := make(chan eval.Change, 16)
	s.Subscribe(func(c eval.Change) { changed <- c })
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change seen", what)
		}
	}
	envVar(t, s, "prod", "V")

	// Editors save by writing a temporary file and renaming it over the old one.
	writeFile(t, dir, ".prod.yaml.tmp", "values:\n  environmentVariables:\n    V: two\n")
	if err := os.Rename(filepath.Join(dir, ".prod.yaml.tmp"), filepath.Join(dir, "prod.yaml")); err != nil {
		t.Fatal(err)
	}
	wait("rename over")
	if got := envVar(t, s, "prod", "V"); got != "two" {
		t.Fatalf("V = %q after edit", got)
	}

	writeFile(t, dir, "newproj/dev.yaml", "values:\n  environmentVariables:\n    V: dev\n")
	wait("new project")
	if got := envVar(t, s, "newproj/dev", "V"); got != "dev" {
		t.Fatalf("V = %q in new project", got)
	}
	writeFile(t, dir, "newproj/dev2.yaml", "values:\n  environmentVariables:\n    V: dev2\n")
	wait("file in new project")
	if got := envVar(t, s, "newproj/dev2", "V"); got != "dev2" {
		t.Fatalf("V = %q in new project file", got)
	}

	if err := os.Rename(filepath.Join(dir, "prod.yaml"), filepath.Join(dir, "staging.yaml")); err != nil {
		t.Fatal(err)
	}
	wait("rename")
	if _, err := s.Snapshot(context.Background(), evaltest.Name(t, "prod")); !errors.Is(err, eval.ErrNotFound) {
		t.Fatalf("prod after rename: %v", err)
	}
	if got := envVar(t, s, "staging", "V"); got != "two" {
		t.Fatalf("staging V = %q", got)
	}
	if err := os.Remove(filepath.Join(dir, "staging.yaml")); err != nil {
		t.Fatal(err)
	}
	wait("delete")
	if _, err := s.Snapshot(context.Background(), evaltest.Name(t, "staging")); !errors.Is(err, eval.ErrNotFound) {
		t.Fatalf("staging after delete: %v", err)
	}
}

func TestRenderLeavesOutImpossibleVariableNames(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "odd.yaml", "values:\n  environmentVariables:\n    \"A=B\": x\n    \"\": y\n    \"app.conf\": z\n    OK: ok\n")
	s := evaltest.NewStore(t, dir)
	snap, err := s.Snapshot(context.Background(), evaltest.Name(t, "odd"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range snap.Vars {
		names = append(names, v.Name)
	}
	if len(names) != 2 || names[0] != "OK" || names[1] != "app.conf" {
		t.Fatalf("Vars = %q, want OK and app.conf (a name exec accepts)", names)
	}
	if string(snap.Env) != "export OK='ok'\n" {
		t.Fatalf("env = %q", snap.Env)
	}
	if len(snap.Diagnostics) != 3 {
		t.Fatalf("diagnostics = %v, want three warnings", snap.Diagnostics)
	}
}

// fileProvider returns the text of a local file and reports it, as a stack
// checkpoint on a file:// backend is read.
type fileProvider struct{}

func (fileProvider) Schema() (inputs, outputs *schema.Schema) {
	return schema.Record(schema.BuilderMap{"path": schema.String()}).Schema(), schema.String().Schema()
}

func (fileProvider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	p := inputs["path"].Value.(string)
	b, err := os.ReadFile(p)
	if err != nil {
		return esc.Value{}, err
	}
	providers.ReportFile(ctx, p)
	return esc.NewValue(string(b)), nil
}

func TestStoreWatchesFilesProvidersRead(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	state := filepath.Join(data, "state.txt")
	if err := os.WriteFile(state, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "app.yaml", "values:\n  s:\n    fn::open::file: {path: "+state+"}\n  environmentVariables:\n    S: ${s}\n")
	writeFile(t, dir, "other.yaml", "values:\n  environmentVariables:\n    X: x\n")
	s := evaltest.NewStore(t, dir, func(c *evaltest.Config) {
		c.Source.Evaluator = &eval.Evaluator{Providers: providers.NewRegistry(map[string]esc.Provider{"file": fileProvider{}})}
		c.Store.FilesDir = func(eval.Name) string { return "/files" }
	})
	if err := s.Watch(); err != nil {
		t.Fatal(err)
	}
	changes := make(chan eval.Change, 8)
	s.Subscribe(func(c eval.Change) { changes <- c })
	if got := envVar(t, s, "app", "S"); got != "one" {
		t.Fatalf("S = %q", got)
	}
	envVar(t, s, "other", "X")
	// Replace the file by rename, as careful writers do.
	tmp := filepath.Join(data, ".state.tmp")
	if err := os.WriteFile(tmp, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, state); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if len(c.Envs) != 1 || c.Envs[0] != evaltest.Name(t, "app") {
			t.Fatalf("change = %+v, want app only", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change after the provider's file changed")
	}
	if got := envVar(t, s, "app", "S"); got != "two" {
		t.Fatalf("S = %q after the file changed", got)
	}
}

// changingSource is a source whose first Produce sees the file its
// provider read change right after the source began watching it, before
// the Store has recorded the result: the update arrives while the
// evaluation is still the Store's running one.
type changingSource struct {
	eval.Source
	file    string
	deliver func(eval.Update)
	once    sync.Once
}

func (c *changingSource) Watch(deliver func(eval.Update)) error { c.deliver = deliver; return nil }

func (c *changingSource) Close() error { return nil }

func (c *changingSource) Produce(ctx context.Context, tree *eval.Tree, name eval.Name, filesDir string) (*eval.Snapshot, error) {
	snap, err := c.Source.Produce(ctx, tree, name, filesDir)
	c.once.Do(func() {
		if err := os.WriteFile(c.file, []byte("two"), 0o600); err == nil {
			c.deliver(eval.Update{Tree: tree, Files: []string{c.file}})
		}
	})
	return snap, err
}

// TestFileChangedWhileEvaluating: a provider's file that changes after it
// was read, while the evaluation that read it is still running (the
// source watches it, the Store has not yet recorded which files the
// result depends on), does not leave that result cached: the reader gets
// the new content.
func TestFileChangedWhileEvaluating(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	state := filepath.Join(data, "state.txt")
	if err := os.WriteFile(state, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "app.yaml", "values:\n  s:\n    fn::open::file: {path: "+state+"}\n  environmentVariables:\n    S: ${s}\n")
	s := evaltest.NewStore(t, dir, evaltest.Watching, evaltest.Providers(map[string]esc.Provider{"file": fileProvider{}}), func(c *evaltest.Config) {
		c.Store.Source = &changingSource{Source: &c.Source, file: state}
	})
	if got := envVar(t, s, "app", "S"); got != "two" {
		t.Fatalf("S = %q, want the file's content after it changed (the stale result was kept)", got)
	}
	if got := s.Evaluations(); got != 2 {
		t.Fatalf("%d evaluations, want 2: the one that read the old file, then one more", got)
	}
}
