package eval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulumi/esc"
	esceval "github.com/pulumi/esc/eval"

	"github.com/escfs/escfs/internal/yamlpos"
	"github.com/escfs/escfs/providers"
)

// Evaluator evaluates environment definitions with the official Pulumi ESC
// evaluator, opening providers from its registry. It holds no per-evaluation
// state and is safe for concurrent use.
type Evaluator struct {
	// Providers opens fn::open::<name> calls.
	Providers esceval.ProviderLoader
	// Decrypter decrypts fn::secret ciphertexts; nil means no key is configured
	// and any ciphertext is a diagnostic.
	Decrypter esceval.Decrypter
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Limits bound what one evaluation may load; zero fields are defaults.
	Limits Limits
	// AtRest checks where each ciphertext belongs before the Decrypter
	// opens it, and what the directory's rules say (package secrets
	// implements it). It is required with a Decrypter; nil means none.
	AtRest AtRest
	// Reader is the user the results are for; definitions that user could
	// not trust are refused (see Reader). nil means this process's user.
	Reader *Reader
}

// Request says what to evaluate and how to render it.
type Request struct {
	// Name is the environment, "env" or "project/env".
	Name string
	// FilesDir is the directory where the environment's files are served or
	// written; the rendered variables of files entries point into it.
	FilesDir string
	// Definition, if not nil, is evaluated in place of the environment's
	// definition file (an edit being checked before it is saved); its
	// imports are read from the tree as usual.
	Definition []byte
	// Check evaluates symbolically, as esc's CheckEnvironment: fn::open
	// calls are not invoked and evaluate to unknown values of their
	// providers' schemas. Nothing is rendered.
	Check bool
}

// Evaluate loads tree's definition of req.Name and everything it imports,
// evaluates it, and renders the result. An environment whose evaluation has
// errors yields a snapshot that carries the diagnostics and no renderings, and
// the error returned is a *DiagnosticsError. Other errors (unknown
// environment, unreadable file) return a nil snapshot.
//
// A definition that is being written while it is read (an editor saving in
// place) is read again once it has been quiet for Limits.Settle, so an
// evaluation never sees it empty or cut; ctx bounds the wait.
func (e *Evaluator) Evaluate(ctx context.Context, tree *Tree, req Request) (*Snapshot, error) {
	for {
		snap, err := e.evaluateOnce(ctx, tree, req)
		var unsettled *unsettledError
		if !errors.As(err, &unsettled) {
			return snap, err
		}
		timer := time.NewTimer(time.Until(unsettled.until))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("evaluate %s: %w (%v)", req.Name, ctx.Err(), unsettled)
		case <-timer.C:
		}
	}
}

func (e *Evaluator) evaluateOnce(ctx context.Context, tree *Tree, req Request) (*Snapshot, error) {
	def, err := tree.Lookup(req.Name)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	limits := e.Limits.withDefaults()
	snap := &Snapshot{Serial: nextSerial(), Name: def.Name, Path: def.Path, EvaluatedAt: now(), Deps: []Name{def.Name}}
	reader := currentReader()
	if e.Reader != nil {
		reader = *e.Reader
	}
	var src []byte
	var tooBig *Diagnostic
	if req.Definition != nil {
		src = req.Definition
		if int64(len(src)) > limits.MaxDefinitionSize {
			tooBig = limits.tooBig(def.Path, int64(len(src)))
		}
	} else if src, tooBig, err = limits.readDefinition(def.Path, reader); err != nil {
		return nil, err
	}
	if tooBig != nil {
		snap.Diagnostics = Diagnostics{*tooBig}
		return snap, snap.Diagnostics.Err()
	}
	diags, reached, literals, files, unsettled := checkLimits(limits, reader, tree, def, src)
	if unsettled != nil {
		return nil, unsettled
	}
	if diags.HasErrors() {
		snap.Diagnostics, snap.Deps = diags, reached
		return snap, diags.Err()
	}
	inflightFrom(ctx).read(def.Path)
	atRest := e.AtRest
	if atRest == nil {
		if e.Decrypter != nil {
			return nil, ErrNoAtRest
		}
		atRest = noAtRest{}
	}
	ctx, places := atRest.Begin(ctx, tree.Root)
	// Every ciphertext where it belongs, before anything is decrypted.
	var placed Diagnostics
	for _, f := range files {
		placed = append(placed, places.Check(f.name, f.path, f.ciphertexts, f.path == def.Path)...)
	}
	if placed.HasErrors() {
		snap.Diagnostics, snap.Deps = placed, reached
		return snap, placed.Err()
	}
	plaintext := append(placed, places.Plaintext(def, positionsOf(literals[def.Path]))...)
	secrets := newSecretSet()
	for _, lits := range literals { // the definitions checkLimits parsed, this one included
		for _, lit := range lits {
			secrets.add(lit.value)
		}
	}
	loader := &treeLoader{tree: tree, decrypter: secretDecrypter{places.Decrypter(e.decrypter()), secrets}, places: places, paths: map[string]string{}, limits: limits, reader: reader, secrets: secrets, parsed: literals}

	if blankYAML(src) {
		src = nil // whitespace and comments only: an empty environment, like an empty file
	}
	decl, sdiags, err := loadDecl(def.Path, src)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", def.Path, err)
	}
	diags = loader.place(fromSyntax(sdiags, loader.fileOf), def.Path)
	var env *esc.Environment
	// Evaluate even after load errors (not after YAML syntax errors, which
	// leave nothing to evaluate), as the official evaluator does, so that
	// every error of a file is reported at once.
	if decl != nil {
		execCtx, err := esc.NewExecContext(map[string]esc.Value{})
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", def.Name.Short(), err)
		}
		var ediags = sdiags[:0:0]
		evalCtx, expiry := providers.WithExpiry(ctx)
		evalCtx, files := providers.WithFiles(evalCtx)
		opener := &openRecorder{ProviderLoader: e.Providers, secrets: secrets}
		if req.Check {
			env, ediags = esceval.CheckEnvironment(evalCtx, def.Name.String(), decl, loader.decrypter, opener, loader, execCtx, true)
		} else {
			env, ediags = esceval.EvalEnvironment(evalCtx, def.Name.String(), decl, loader.decrypter, opener, loader, execCtx)
		}
		snap.ExpiresAt, snap.Opened = expiry.Earliest(), opener.opened.Load()
		snap.Watched = files.Paths()
		diags = append(diags, loader.place(fromSyntax(ediags, loader.fileOf), def.Path)...)
	}
	if err := loader.unsettledErr(); err != nil {
		return nil, err
	}
	snap.Deps = loader.loaded()
	if !slices.Contains(snap.Deps, def.Name) { // an import cycle asks for the root itself
		snap.Deps = append(snap.Deps, def.Name)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("evaluate %s: %w", def.Name.Short(), ctx.Err())
	}
	diags = append(diags, plaintext...)
	// Nothing secret leaves in a diagnostic: not a provider's echo of a
	// secret input, not an evaluator message quoting a secret value.
	secrets.scrubDiagnostics(diags)
	snap.Diagnostics = diags
	if diags.HasErrors() || req.Check {
		return snap, diags.Err()
	}
	render(snap, env, req.FilesDir, loader.fileOf)
	exportExpiry(snap)
	return snap, snap.Diagnostics.Err()
}

func (e *Evaluator) decrypter() esceval.Decrypter {
	if e.Decrypter != nil {
		return e.Decrypter
	}
	return noKeyDecrypter{}
}

// openRecorder notes whether an evaluation loaded any provider: its failures
// may be transient (a service that was down), unlike definition errors.
// It also wraps every provider so that its secret inputs and outputs are
// known to the scrubbing of diagnostics.
type openRecorder struct {
	esceval.ProviderLoader
	secrets *secretSet
	opened  atomic.Bool
}

func (o *openRecorder) LoadProvider(ctx context.Context, name string) (esc.Provider, error) {
	o.opened.Store(true)
	p, err := o.ProviderLoader.LoadProvider(ctx, name)
	if err != nil || p == nil {
		return p, err
	}
	return &secretProvider{Provider: p, name: name, secrets: o.secrets}, nil
}

// ErrNoKey is the error for a fn::secret ciphertext when no key is configured.
var ErrNoKey = errors.New("this environment holds an encrypted fn::secret, but escfs has no decryption key configured")

// noKeyDecrypter refuses every ciphertext with ErrNoKey.
type noKeyDecrypter struct{}

func (noKeyDecrypter) Decrypt(context.Context, []byte) ([]byte, error) { return nil, ErrNoKey }

// treeLoader loads imported environments from a Tree and records which
// names were asked for, so that a change to any of them (even one that was
// missing) can invalidate the importer.
type treeLoader struct {
	tree      *Tree
	decrypter esceval.Decrypter
	limits    Limits
	reader    Reader
	loads     atomic.Int64               // environments loaded, against MaxImports
	secrets   *secretSet                 // learns the fn::secret literals of every import
	places    Placement                  // where each ciphertext belongs, checked
	parsed    map[string][]secretLiteral // the definitions whose literals checkLimits collected

	mu        sync.Mutex
	unsettled error             // GUARDED_BY(mu): an import was being written
	names     []Name            // GUARDED_BY(mu): every valid name asked for
	paths     map[string]string // GUARDED_BY(mu): import name as written -> file path
}

var _ esceval.EnvironmentLoader = (*treeLoader)(nil)

// LoadEnvironment returns the definition of an imported environment.
func (l *treeLoader) LoadEnvironment(ctx context.Context, name string) ([]byte, esceval.Decrypter, error) {
	n, err := ParseName(name)
	if err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	l.names = append(l.names, n)
	l.mu.Unlock()
	def, err := l.tree.Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	// A backstop for what checkLimits cannot see before evaluation: imports
	// through ${environments...} references.
	if n := l.loads.Add(1); n > int64(l.limits.MaxImports) {
		return nil, nil, fmt.Errorf("more than %d environments loaded in one evaluation (%s raises the limit)", l.limits.MaxImports, FlagMaxImports)
	}
	src, tooBig, err := l.limits.readDefinition(def.Path, l.reader)
	if err != nil {
		if errors.As(err, new(*unsettledError)) {
			l.mu.Lock()
			l.unsettled = err
			l.mu.Unlock()
		}
		return nil, nil, err
	}
	if tooBig != nil {
		return nil, nil, fmt.Errorf("%s: %s", def.Path, tooBig.Message)
	}
	if _, done := l.parsed[def.Path]; !done {
		// An import checkLimits could not see (${environments...}).
		if l.secrets != nil {
			l.secrets.addLiterals(src)
		}
		if l.places != nil {
			if err := checkSource(l.places, def.Name, def.Path, src); err != nil {
				return nil, nil, err
			}
		}
	}
	inflightFrom(ctx).read(def.Path)
	if blankYAML(src) {
		src = nil
	}
	src = canonicalCurrentEnvironment(src, name, def.Name.String())
	l.mu.Lock()
	l.paths[name] = def.Path
	l.mu.Unlock()
	return src, l.decrypter, nil
}

// currentEnvironmentRef matches ${context.currentEnvironment.name} and the
// dollars before it ($${...} is an escaped, literal ${...}).
var currentEnvironmentRef = regexp.MustCompile(`(\$*)\$\{\s*context\.currentEnvironment\.name\s*\}`)

// canonicalCurrentEnvironment makes ${context.currentEnvironment.name} in an
// imported definition its canonical name ("project/env"), as it is for the
// environment evaluated: the evaluator names an import after the import
// string as written ("base"), which is also the key of ${imports.base}, so
// the import string cannot be rewritten instead. The reference is replaced
// by the name itself (names hold no YAML or interpolation syntax); columns
// after it on its line shift in diagnostics.
func canonicalCurrentEnvironment(src []byte, name, canonical string) []byte {
	if name == canonical || !bytes.Contains(src, []byte("currentEnvironment")) {
		return src
	}
	return currentEnvironmentRef.ReplaceAllFunc(src, func(m []byte) []byte {
		dollars := len(m) - len(bytes.TrimLeft(m, "$")) - 1 // before the reference's own $
		if dollars%2 == 1 {
			return m // escaped: a literal ${...}
		}
		return append(bytes.Repeat([]byte("$"), dollars), canonical...)
	})
}

// unsettledErr returns the error of an import that was being written when
// it was read, if any: the evaluation must be tried again.
func (l *treeLoader) unsettledErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unsettled
}

// fileOf maps a file name in an evaluator diagnostic to a path: imported
// environments are parsed under their import name.
func (l *treeLoader) fileOf(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.paths[name]; ok {
		return p
	}
	return name
}

// loaded returns the names asked for, without repeats.
func (l *treeLoader) loaded() []Name {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[Name]bool{}
	var out []Name
	for _, n := range l.names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// place gives a file to the diagnostics the evaluator could not locate: its
// YAML syntax errors carry no position. Such an error is put in the imported
// file that fails to parse with the same message, else in fallback (the
// environment's own file). This re-reads imports only when it is needed.

func (l *treeLoader) place(ds Diagnostics, fallback string) Diagnostics {
	for i := range ds {
		if ds[i].File != "" {
			continue
		}
		message := ds[i].Message
		ds[i].File = fallback
		l.mu.Lock()
		paths := slices.Sorted(maps.Values(l.paths))
		l.mu.Unlock()
	search:
		for _, p := range slices.Compact(paths) {
			src, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			_, sdiags, _ := esceval.LoadYAMLBytes(p, src)
			for _, d := range fromSyntax(sdiags, l.fileOf) {
				if d.File == "" && d.Message == message {
					ds[i].File = p
					break search
				}
			}
		}
		if ds[i].Line == 0 {
			if src, err := os.ReadFile(ds[i].File); err == nil {
				ds[i].Line, ds[i].Column, ds[i].Message = yamlpos.Locate(src, message)
			}
		}
	}
	return ds
}

// positionsOf returns where each literal is.
func positionsOf(lits []secretLiteral) []Position {
	out := make([]Position, len(lits))
	for i, l := range lits {
		out[i] = Position{l.line, l.col}
	}
	return out
}
