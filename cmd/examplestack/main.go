// Command examplestack writes the Pulumi stack state that the shipped
// examples read: the eks-cluster/demo stack of a self-managed file://
// backend, its kubeconfig output a secret encrypted with the passphrase in
// DIR/PASSPHRASE, exactly as `pulumi up` leaves it. It stands in for the EKS
// stack of the Kubernetes cluster-access guide, pointing at a local cluster.
//
//	go run ./cmd/examplestack examples/stacks
//
// Every run encrypts afresh (new salt and nonces), so the bytes differ while
// the outputs stay the same.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/escfs/escfs/providers/pulumistacks/stacktest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: examplestack DIR")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "examplestack:", err)
		os.Exit(1)
	}
}

// kubeconfig is the stack's kubeconfig output: the guide's local cluster
// (docker-desktop's address) with a bearer token.
var kubeconfig = map[string]any{
	"apiVersion": "v1",
	"kind":       "Config",
	"clusters": []any{map[string]any{"name": "demo", "cluster": map[string]any{
		"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": true}}},
	"users": []any{map[string]any{"name": "demo-admin", "user": map[string]any{
		"token": "example-token-from-the-eks-cluster-stack"}}},
	"contexts": []any{map[string]any{"name": "demo", "context": map[string]any{
		"cluster": "demo", "user": "demo-admin", "namespace": "demos"}}},
	"current-context": "demo",
}

func write(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "PASSPHRASE"))
	if err != nil {
		return err
	}
	path, err := stacktest.Write(dir, "eks-cluster", "demo",
		map[string]any{"clusterName": "demo", "region": "us-west-2"},
		map[string]any{"kubeconfig": kubeconfig},
		strings.TrimSpace(string(b)), stacktest.Options{})
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
