// Package kumotest starts the kumo AWS API emulator on 127.0.0.1 for tests
// that talk real HTTP to STS, Secrets Manager, SSM and S3.
//
// The binary comes from $ESCFS_KUMO, else from .ci/build-kumo (which builds
// it once, several minutes, and caches it). make test sets ESCFS_KUMO.
package kumotest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/testutil"
)

// Binary returns the path of the kumo binary, building it if needed.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ESCFS_KUMO"); p != "" {
		return p
	}
	script, err := testutil.FindUp(".ci/build-kumo")
	if err != nil {
		tb.Fatalf("kumo: no $ESCFS_KUMO and %v", err)
	}
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		tb.Fatalf("kumo: %s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

// Start runs a fresh kumo on a free loopback port and returns its endpoint
// URL (http://127.0.0.1:PORT). The emulator is stopped when the test ends.
func Start(tb testing.TB) string {
	tb.Helper()
	bin := Binary(tb)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	logFile, err := os.CreateTemp(tb.TempDir(), "kumo-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start kumo: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile.Name())
			tb.Fatalf("kumo exited at start:\n%s", log)
		default:
		}
		if resp, err := client.Get(endpoint); err == nil {
			resp.Body.Close()
			return endpoint
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kumo did not answer on %s within 15s", endpoint)
		}
	}
}

// Env sets, for the rest of the test, the variables that point the AWS SDK
// at endpoint with dummy credentials and no shared configuration files.
func Env(tb testing.TB, endpoint string) {
	tb.Helper()
	dir := tb.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            endpoint,
		"AWS_ENDPOINT_URL_STS":        endpoint,
		"AWS_REGION":                  "us-east-1",
		"AWS_ACCESS_KEY_ID":           "AKIAKUMOTEST",
		"AWS_SECRET_ACCESS_KEY":       "kumo-test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_ROLE_ARN":                "",
		"AWS_CA_BUNDLE":               "",
	} {
		if t, ok := tb.(*testing.T); ok {
			t.Setenv(k, v)
		} else {
			old, had := os.LookupEnv(k)
			os.Setenv(k, v)
			tb.Cleanup(func() {
				if had {
					os.Setenv(k, old)
				} else {
					os.Unsetenv(k)
				}
			})
		}
	}
}
