package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// TestCSIProviderProcess runs escfs csi-provider as the DaemonSet does,
// calls it as the driver does, and stops it with SIGTERM: exit 0, socket
// removed.
func TestCSIProviderProcess(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{"prod/app.yaml": "values:\n  environmentVariables:\n    A: alpha\n"})
	authz := filepath.Join(t.TempDir(), "authz.yaml")
	os.WriteFile(authz, []byte("allow:\n  - {namespace: prod, serviceAccount: web, environments: [prod/app]}\n"), 0o644)
	socket := filepath.Join(t.TempDir(), "escfs.sock")
	cmd := exec.Command(escfstest.Binary(t), "--dir", dir, "csi-provider", "--socket", socket, "--authz", authz)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket after 10 s:\n%s", stderr.String())
		}
	}
	if fi, _ := os.Stat(socket); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"}); err != nil || v.RuntimeName != "escfs" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	resp, err := client.Mount(ctx, &v1alpha1.MountRequest{
		Attributes: `{"environment":"prod/app","csi.storage.k8s.io/pod.namespace":"prod","csi.storage.k8s.io/serviceAccount.name":"web"}`,
		Permission: "420",
	})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range resp.Files {
		found = found || f.Path == "dotenv" && string(f.Contents) == "A=alpha\n"
	}
	if !found {
		t.Errorf("no dotenv with A=alpha among %d files", len(resp.Files))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("the socket is still there: %v", err)
	}
}

// TestCSIProviderAfterKill: a provider killed with SIGKILL leaves its socket
// behind; the next one, as the DaemonSet restarts it, replaces the stale
// socket and serves.
func TestCSIProviderAfterKill(t *testing.T) {
	dir := filetree.Write(t, "", map[string]string{"prod/app.yaml": "values:\n  environmentVariables:\n    A: alpha\n"})
	socket := filepath.Join(t.TempDir(), "escfs.sock")
	start := func() *exec.Cmd {
		cmd := exec.Command(escfstest.Binary(t), "--dir", dir, "csi-provider", "--socket", socket)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	version := func() error {
		conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = v1alpha1.NewCSIDriverProviderClient(conn).Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		return err
	}
	waitServing := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); version() != nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("not serving after 10 s")
			}
		}
	}
	first := start()
	waitServing()
	first.Process.Kill()
	first.Wait()
	if _, err := os.Stat(socket); err != nil {
		t.Fatalf("after kill -9 the socket should be left behind: %v", err)
	}
	if version() == nil {
		t.Fatal("a killed provider still answers")
	}
	start()
	waitServing()
}
