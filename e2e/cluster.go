// Package e2e holds end-to-end tests against real services on 127.0.0.1.
// The test files carry the build tag e2e; run them with `make e2e`.
//
// StartCluster runs a real Kubernetes control plane for one test: Debian's
// etcd (package etcd-server) as the store and a kube-apiserver built from
// k8s.io/kubernetes (pinned in .ci/kube-apiserver; $ESCFS_KUBE_APISERVER, else
// .ci/build-kube-apiserver builds it once, about 8 minutes, and caches it).
// Both listen only on loopback; clients authenticate with a bearer token that
// is in group system:masters. There are no nodes, so pods never run, but every
// API object (namespaces, secrets, configmaps, RBAC) works.
//
// journey_test.go walks the Kubernetes cluster-access guide through a real
// escfs mount against it (a Pulumi stack checkpoint holding the kubeconfig,
// kubectl on MNT/<env>/files/KUBECONFIG); aws_test.go covers the AWS
// providers through the mount against kumo behind an AWSFront.
//
// c.Kubeconfig("wrong") yields a config the apiserver refuses (kubectl says
// "You must be logged in to the server"), for negative cases. The cluster
// lives until the test ends; one per test costs about 3 s.
package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/testutil"
)

// Cluster is a running etcd + kube-apiserver pair, stopped when its test ends.
type Cluster struct {
	Server string // https://127.0.0.1:PORT
	CAData []byte // PEM of the CA that signed the serving certificate
	Token  string // bearer token of user "admin", group system:masters
	Token2 string // another token of an admin, for rotating credentials
}

// readyTimeout bounds the wait for /readyz, which takes about 3 s on an idle
// two-core machine.
const readyTimeout = 90 * time.Second

// StartCluster starts etcd and kube-apiserver on free loopback ports and
// returns once the apiserver reports /readyz. Stopping (SIGTERM, then SIGKILL
// after 10 s) is registered with tb.Cleanup; the logs of both processes are
// printed if the test failed.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	apiserver := apiserverBinary(tb)
	etcdBin := os.Getenv("ESCFS_ETCD")
	if etcdBin == "" {
		var err error
		if etcdBin, err = exec.LookPath("etcd"); err != nil {
			tb.Fatalf("etcd not found (apt-get install etcd-server, or set $ESCFS_ETCD): %v", err)
		}
	}
	dir := tb.TempDir()

	// etcd
	clientPort, peerPort := freePort(tb), freePort(tb)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := startProcess(tb, dir, "etcd", etcdBin,
		"--name=e2e",
		"--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL,
	)
	waitHTTP(tb, etcd, &http.Client{Timeout: 2 * time.Second}, etcdURL+"/health", "", 30*time.Second)

	// Certificates, keys and the token file.
	ca, caKey, caPEM := newCA(tb)
	certPEM, keyPEM := newServingCert(tb, ca, caKey)
	saPriv, saPub := newKeyPair(tb)
	token, token2 := randomHex(tb, 16), randomHex(tb, 16)
	files := map[string][]byte{
		"ca.crt":      caPEM,
		"serving.crt": certPEM,
		"serving.key": keyPEM,
		"sa.key":      saPriv,
		"sa.pub":      saPub,
		"tokens.csv":  []byte(token + ",admin,admin-uid,system:masters\n" + token2 + ",admin2,admin2-uid,system:masters\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}

	// kube-apiserver
	port := freePort(tb)
	p := func(name string) string { return filepath.Join(dir, name) }
	kas := startProcess(tb, dir, "kube-apiserver", apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--advertise-address=127.0.0.1",
		"--tls-cert-file="+p("serving.crt"),
		"--tls-private-key-file="+p("serving.key"),
		"--client-ca-file="+p("ca.crt"),
		"--token-auth-file="+p("tokens.csv"),
		"--service-account-key-file="+p("sa.pub"),
		"--service-account-signing-key-file="+p("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24", // configuration only: nothing routes there
		"--cert-dir="+p("cert-dir"),
		// Endpoints may not be loopback addresses, so reconciling the
		// "kubernetes" service to 127.0.0.1 fails every 10 s; nothing here
		// needs that service's endpoints.
		"--endpoint-reconciler-type=none",
	)
	c := &Cluster{Server: fmt.Sprintf("https://127.0.0.1:%d", port), CAData: caPEM, Token: token, Token2: token2}
	waitHTTP(tb, kas, c.HTTPClient(), c.Server+"/readyz", token, readyTimeout)
	return c
}

// HTTPClient returns a client that trusts the cluster's CA.
func (c *Cluster) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAData)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// Kubeconfig renders a kubeconfig YAML for this cluster that authenticates
// with token (c.Token for the admin, anything else to be refused).
func (c *Cluster) Kubeconfig(token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: e2e
  user:
    token: %q
contexts:
- name: e2e
  context:
    cluster: e2e
    user: e2e
current-context: e2e
`, c.Server, base64.StdEncoding.EncodeToString(c.CAData), token)
}

// KubeconfigObject is Kubeconfig(token) as the object a Pulumi stack output
// holds (as pulumi-eks's kubeconfig output does).
func (c *Cluster) KubeconfigObject(token string) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{"name": "e2e", "cluster": map[string]any{
			"server": c.Server, "certificate-authority-data": base64.StdEncoding.EncodeToString(c.CAData)}}},
		"users":           []any{map[string]any{"name": "e2e", "user": map[string]any{"token": token}}},
		"contexts":        []any{map[string]any{"name": "e2e", "context": map[string]any{"cluster": "e2e", "user": "e2e"}}},
		"current-context": "e2e",
	}
}

// apiserverBinary returns $ESCFS_KUBE_APISERVER, else the cached build of
// .ci/build-kube-apiserver.
func apiserverBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ESCFS_KUBE_APISERVER"); p != "" {
		return p
	}
	script, err := testutil.FindUp(".ci/build-kube-apiserver")
	if err != nil {
		tb.Fatalf("kube-apiserver: no $ESCFS_KUBE_APISERVER and %v", err)
	}
	tb.Logf("building kube-apiserver with %s (about 8 minutes unless cached)", script)
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		tb.Fatalf("kube-apiserver: %s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

// process is a started child whose exit is observed by a goroutine.
type process struct {
	name   string
	log    string
	exited chan struct{}
}

// startProcess runs bin with its output in dir/name.log and registers its
// stop: SIGTERM, then SIGKILL after 10 s, by PID.
func startProcess(tb testing.TB, dir, name, bin string, args ...string) *process {
	tb.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	if name == "etcd" && runtime.GOARCH != "amd64" {
		cmd.Env = append(cmd.Env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH) // etcd 3.4 refuses arm64 without it
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a killed test binary
	if err := cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, log: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		stop(cmd, p.exited)
		logFile.Close()
		if tb.Failed() {
			tb.Logf("%s log (%s):\n%s", name, logPath, tail(logPath, 200))
		}
	})
	return p
}

// stop ends a started child: SIGTERM, then SIGKILL after 10 s. exited is
// closed when its Wait returns.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// waitHTTP polls url until it answers 200 OK, failing the test if p exits or
// the timeout passes.
func waitHTTP(tb testing.TB, p *process, client *http.Client, url, token string, timeout time.Duration) {
	tb.Helper()
	start := time.Now()
	var last string
	for deadline := start.Add(timeout); ; time.Sleep(250 * time.Millisecond) {
		select {
		case <-p.exited:
			tb.Fatalf("%s exited while starting:\n%s", p.name, tail(p.log, 100))
		default:
		}
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 4096)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				tb.Logf("%s ready after %v", p.name, time.Since(start).Round(100*time.Millisecond))
				return
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body[:n])
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready at %s within %v; last answer: %s", p.name, url, timeout, last)
		}
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newCA(tb testing.TB) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "escfs-e2e-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// newServingCert returns the PEM certificate and key for 127.0.0.1/localhost.
func newServingCert(tb testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, _ = newKeyPairPEM(tb, key)
	return certPEM, keyPEM
}

// newKeyPair returns a fresh service-account signing key as PKCS#8 and
// PKIX PEM.
func newKeyPair(tb testing.TB) (priv, pub []byte) {
	return newKeyPairPEM(tb, newKey(tb))
}

func newKeyPairPEM(tb testing.TB, key *ecdsa.PrivateKey) (priv, pub []byte) {
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
}
