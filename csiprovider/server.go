// Package csiprovider serves escfs environments to Kubernetes pods as a
// provider of the Secrets Store CSI Driver
// (sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1: Version, Mount).
//
// A SecretProviderClass names an environment and what to write
// (parameters.environment, parameters.objects); the driver adds the pod's
// namespace, service account and service-account tokens. The provider
// checks the pod may mount the environment (Authz, refused by default),
// evaluates it with the pod's token as the OIDC subject token of its
// logins (aws-login oidc, azure-login, gcp-login, vault-login jwt), so each
// service account gets its own cloud role with no secret in the cluster,
// and returns the files with content hashes as object versions.
//
// Evaluations are cached by service account and environment until their
// credentials reach their refresh point (two thirds of their lifetime), so
// 100 pods of one service account cost one evaluation, the driver's
// rotation polls renew before anything expires, and an expired object is
// never returned. A definition change (the directory is watched, in every
// layout the mount knows) reaches the next Mount; a definition that no
// longer evaluates fails the Mount, which leaves a running pod's files as
// they were.
package csiprovider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulumi/esc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/redact"
	"github.com/escfs/escfs/providers"
)

// RuntimeName is the provider's name in Version's answer.
const RuntimeName = "escfs"

// Options configure a Server.
type Options struct {
	// Store provides the definitions tree and its changes; the server
	// evaluates with Evaluator itself, per service account, unless Shared.
	Store *eval.Store
	// Shared serves the Store's own snapshots, one for every pod: for a
	// source that evaluates by itself (Pulumi Cloud opens providers with
	// its own OIDC issuer), where the pod's identity plays no part. The
	// files directory is then the Store's (DefaultFilesDir).
	Shared bool
	// Evaluator evaluates definitions.
	Evaluator *eval.Evaluator
	// Authz says which pods may mount which environments; nil refuses all.
	Authz *Authz
	// Version is the provider's version.
	Version string
	// EvalTimeout bounds one evaluation; 0 means 30 seconds.
	EvalTimeout time.Duration
	// Logger receives one line per Mount; values are never logged.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Server implements the driver's CSIDriverProvider service.
type Server struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	opts Options

	evaluations atomic.Int64
	mu          sync.Mutex
	cache       map[cacheKey]*cached // GUARDED_BY(mu)
}

type cacheKey struct {
	identity string // namespace/serviceAccount
	env      string
	filesDir string
}

// cached is an evaluation for one service account; done closes when it
// ends (concurrent Mounts wait for one evaluation).
type cached struct {
	done       chan struct{}
	tree       *eval.Tree // the definitions it was evaluated from
	snap       *eval.Snapshot
	err        error
	freshUntil time.Time // zero: until the definitions change
}

// current reports whether c's evaluation holds for tree: the definitions
// it read are unchanged.
func (c *cached) current(tree *eval.Tree) bool {
	return c.err == nil && tree.Unchanged(c.tree, c.snap.Deps)
}

// New returns a server over opts.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, cache: map[cacheKey]*cached{}}
}

// Evaluations returns how many evaluations the server has run.
func (s *Server) Evaluations() int64 { return s.evaluations.Load() }

// Version answers the driver's Version call.
func (s *Server) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: RuntimeName, RuntimeVersion: s.opts.Version}, nil
}

// Mount answers the driver's Mount call: the files of the environment the
// class names, for the pod the driver names, or an error (which the driver
// shows in the pod's events) and no files.
func (s *Server) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	r, err := parseRequest(req.GetAttributes(), req.GetPermission())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "escfs: %v", err)
	}
	name, err := eval.ParseName(r.env)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "escfs: environment %q: %v", r.env, err)
	}
	env := name.String()
	log := s.opts.Logger.With("namespace", r.namespace, "serviceAccount", r.serviceAccount, "pod", r.pod, "env", env)
	if !s.opts.Authz.Allows(r.namespace, r.serviceAccount, env) {
		log.Warn("mount refused")
		return nil, status.Errorf(codes.PermissionDenied, "escfs: service account %s/%s may not mount environment %s (the provider's authorization rules allow no such mount)", r.namespace, r.serviceAccount, env)
	}
	for _, t := range r.tokens {
		redact.Add(t)
	}
	var snap *eval.Snapshot
	if s.opts.Shared {
		if r.filesDir != DefaultFilesDir {
			return nil, status.Errorf(codes.InvalidArgument, "escfs: filesDir is %s when serving Pulumi Cloud", DefaultFilesDir)
		}
		wctx, cancel := context.WithTimeout(ctx, s.opts.EvalTimeout)
		snap, err = s.opts.Store.Snapshot(wctx, name)
		cancel()
		if err == nil {
			err = snap.Err()
		}
	} else {
		snap, err = s.snapshot(ctx, r, env)
	}
	if err != nil {
		log.Warn("mount failed", "error", redact.String(err.Error()))
		return nil, status.Errorf(codes.Unavailable, "escfs: %s", redact.String(err.Error()))
	}
	files, err := render(snap, r.objects, r.mode)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "escfs: %s: %s", env, redact.String(err.Error()))
	}
	resp := &v1alpha1.MountResponse{}
	for _, f := range files {
		sum := sha256.Sum256(f.Contents)
		resp.ObjectVersion = append(resp.ObjectVersion, &v1alpha1.ObjectVersion{Id: f.Path, Version: hex.EncodeToString(sum[:12])})
		resp.Files = append(resp.Files, f)
	}
	log.Info("mounted", "files", len(files))
	return resp, nil
}

// snapshot returns a fresh evaluation of env for r's service account,
// evaluating if the cached one is stale, past its refresh point, or for
// older definitions. A failed renewal serves the previous evaluation while
// its credentials are valid; never after.
func (s *Server) snapshot(ctx context.Context, r *request, env string) (*eval.Snapshot, error) {
	key := cacheKey{identity: r.namespace + "/" + r.serviceAccount, env: env, filesDir: r.filesDir}
	now := s.opts.Now()
	tree := s.opts.Store.Tree()
	s.mu.Lock()
	c := s.cache[key]
	if c != nil {
		select {
		case <-c.done:
			if c.current(tree) && (c.freshUntil.IsZero() || now.Before(c.freshUntil)) {
				s.mu.Unlock()
				return c.snap, nil
			}
		default: // an evaluation is running: wait for it
			s.mu.Unlock()
			return s.wait(ctx, c)
		}
	}
	prev := c
	c = &cached{done: make(chan struct{}), tree: tree}
	s.cache[key] = c
	s.mu.Unlock()

	c.snap, c.err = s.evaluate(r, env, tree)
	if c.err == nil && !c.snap.ExpiresAt.IsZero() {
		c.freshUntil = refreshAt(c.snap.EvaluatedAt, c.snap.ExpiresAt)
	}
	if c.err != nil && prev != nil && prev.current(tree) &&
		(prev.snap.ExpiresAt.IsZero() || s.opts.Now().Before(prev.snap.ExpiresAt)) {
		// The renewal failed but what the pod has is still valid: serve it,
		// and try again at the next Mount.
		s.opts.Logger.Warn("renewal failed; serving the previous evaluation until it expires", "env", env, "error", redact.String(c.err.Error()))
		c.snap, c.err, c.freshUntil = prev.snap, nil, s.opts.Now()
	}
	close(c.done)
	return c.snap, c.err
}

func (s *Server) wait(ctx context.Context, c *cached) (*eval.Snapshot, error) {
	select {
	case <-c.done:
		return c.snap, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refreshAt is when credentials evaluated at from and expiring at expires
// are renewed: two thirds of their lifetime.
func refreshAt(from, expires time.Time) time.Time {
	return from.Add(expires.Sub(from) * 2 / 3)
}

// evaluate evaluates env with r's pod tokens.
func (s *Server) evaluate(r *request, env string, tree *eval.Tree) (*eval.Snapshot, error) {
	s.evaluations.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.EvalTimeout)
	defer cancel()
	if len(r.tokens) > 0 {
		ctx = providers.WithPodTokens(ctx, r.tokens)
	}
	snap, err := s.opts.Evaluator.Evaluate(ctx, tree, eval.Request{Name: env, FilesDir: r.filesDir})
	if err != nil {
		return nil, err
	}
	if err := snap.Err(); err != nil {
		return nil, err
	}
	if !snap.ExpiresAt.IsZero() && !s.opts.Now().Before(snap.ExpiresAt) {
		return nil, fmt.Errorf("%s: its credentials expired at %s, as soon as they were issued", env, snap.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return snap, nil
}

// render returns the files of objs (nil: every rendering and files entry).
func render(snap *eval.Snapshot, objs []Object, mode int32) ([]*v1alpha1.File, error) {
	if objs == nil {
		for _, r := range renderings {
			objs = append(objs, Object{Render: r, Path: r, mode: mode})
		}
		for _, f := range snap.Files {
			objs = append(objs, Object{File: f.Name, Path: "files/" + f.Name, mode: mode})
		}
	}
	var files []*v1alpha1.File
	for _, o := range objs {
		var content []byte
		switch {
		case o.Render == "env":
			content = snap.Env
		case o.Render == "dotenv":
			content = snap.Dotenv
		case o.Render == "values.json":
			content = snap.ValuesJSON
		case o.File != "":
			f, ok := snap.File(o.File)
			if !ok {
				return nil, fmt.Errorf("no files entry %q (the environment has %s)", o.File, fileNames(snap))
			}
			content = f.Content
		default:
			v, err := eval.LookupPath(o.Property, snap.Values)
			if err != nil {
				return nil, err
			}
			if content, err = valueBytes(v); err != nil {
				return nil, fmt.Errorf("property %s: %w", o.Property, err)
			}
		}
		files = append(files, &v1alpha1.File{Path: o.Path, Mode: o.mode, Contents: content})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// valueBytes is a property's file content: a string as it is, anything
// else as JSON, secrets revealed.
func valueBytes(v esc.Value) ([]byte, error) {
	if s, ok := v.Value.(string); ok {
		return []byte(s), nil
	}
	return json.Marshal(v.ToJSON(false))
}

func fileNames(snap *eval.Snapshot) string {
	if len(snap.Files) == 0 {
		return "none"
	}
	var names []string
	for _, f := range snap.Files {
		names = append(names, f.Name)
	}
	return fmt.Sprint(names)
}

// Serve listens on the unix socket at path (replacing a stale one, mode
// 0600) and serves until ctx ends.
func Serve(ctx context.Context, path string, s *Server) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	g := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(g, s)
	go func() {
		<-ctx.Done()
		g.GracefulStop()
	}()
	if err := g.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve %s: %w", path, err)
	}
	return nil
}
