// Package csitest runs escfs's CSI provider for tests, and calls it as the
// Secrets Store CSI Driver does: the driver's own client and proto types,
// the MountRequest filled as the driver's node server fills it.
package csitest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/escfs/escfs/csiprovider"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/internal/filetree"
)

// World is a provider serving a definitions directory on a unix socket,
// and the driver's client of it.
type World struct {
	Dir    string
	Server *csiprovider.Server
	Client v1alpha1.CSIDriverProviderClient
}

// Start writes files into a new definitions directory and serves it with
// the authorization rules (YAML; "" for none) on a unix socket, stopped
// when t ends; the client dials it as the driver dials its providers.
func Start(t testing.TB, files map[string]string, rules string) *World {
	t.Helper()
	dir := t.TempDir()
	filetree.Write(t, dir, files)
	var ev *eval.Evaluator
	store := evaltest.NewStore(t, dir, evaltest.Watching, func(c *evaltest.Config) {
		c.Store.FilesDir = func(eval.Name) string { return csiprovider.DefaultFilesDir }
		c.Source.Debounce, c.Source.MaxWait = 10*time.Millisecond, 50*time.Millisecond
		ev = c.Source.Evaluator
	})
	var authz *csiprovider.Authz
	if rules != "" {
		authz = Authz(t, rules)
	}
	srv := csiprovider.New(csiprovider.Options{Store: store, Evaluator: ev, Authz: authz, Version: "1.2.3"})
	w := Serve(t, srv)
	w.Dir = dir
	return w
}

// Authz returns the authorization rules of rules (YAML).
func Authz(t testing.TB, rules string) *csiprovider.Authz {
	t.Helper()
	f := filepath.Join(t.TempDir(), "authz.yaml")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := csiprovider.LoadAuthz(f)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Serve serves srv on a unix socket until t ends, and dials it as the
// driver dials its providers (pkg/secrets-store/provider_client.go).
func Serve(t testing.TB, srv *csiprovider.Server) *World {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "escfs.sock")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- csiprovider.Serve(ctx, socket, srv) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop within 10 s")
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no socket after 5 s")
		}
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &World{Server: srv, Client: v1alpha1.NewCSIDriverProviderClient(conn)}
}

// Pod is what the driver knows of a pod: its namespace, service account
// and tokens (audience -> token).
type Pod struct {
	Namespace, ServiceAccount string
	Tokens                    map[string]string
}

// Mount calls Mount as the driver's node server fills the request: the
// class's parameters, the volume attributes the kubelet passes (pod name,
// namespace, UID, service account), the tokens as the driver encodes them,
// JSON; permission 0644 as JSON; the current object versions.
func (w *World) Mount(t testing.TB, p Pod, params map[string]string, current map[string]string) (*v1alpha1.MountResponse, error) {
	t.Helper()
	attrs := map[string]string{
		"csi.storage.k8s.io/pod.name":            "web-7d4f9",
		"csi.storage.k8s.io/pod.namespace":       p.Namespace,
		"csi.storage.k8s.io/pod.uid":             "0d7c9e4e-0000-0000-0000-000000000001",
		"csi.storage.k8s.io/serviceAccount.name": p.ServiceAccount,
		"csi.storage.k8s.io/ephemeral":           "false",
		"secretProviderClass":                    "escfs-app",
	}
	for k, v := range params {
		attrs[k] = v
	}
	if len(p.Tokens) > 0 {
		toks := map[string]map[string]string{}
		for aud, tok := range p.Tokens {
			toks[aud] = map[string]string{"token": tok, "expirationTimestamp": time.Now().Add(time.Hour).Format(time.RFC3339)}
		}
		b, _ := json.Marshal(toks)
		attrs["csi.storage.k8s.io/serviceAccount.tokens"] = string(b)
	}
	a, _ := json.Marshal(attrs)
	perm, _ := json.Marshal(os.FileMode(0o644))
	req := &v1alpha1.MountRequest{Attributes: string(a), TargetPath: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/escfs/mount", Permission: string(perm)}
	for id, v := range current {
		req.CurrentObjectVersion = append(req.CurrentObjectVersion, &v1alpha1.ObjectVersion{Id: id, Version: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Client.Mount(ctx, req)
}

// Files returns a response's files by path.
func Files(resp *v1alpha1.MountResponse) map[string]*v1alpha1.File {
	m := map[string]*v1alpha1.File{}
	for _, f := range resp.GetFiles() {
		m[f.Path] = f
	}
	return m
}

// Versions returns a response's object versions by ID.
func Versions(resp *v1alpha1.MountResponse) map[string]string {
	m := map[string]string{}
	for _, v := range resp.GetObjectVersion() {
		m[v.Id] = v.Version
	}
	return m
}
