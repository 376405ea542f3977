package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
	"github.com/escfs/escfs/internal/filetree"
)

// TestMountDebugFuse: --debug-fuse logs every FUSE request and reply to
// escfs's stderr, without the data of a read; without it, none.
func TestMountDebugFuse(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("mount tests need /dev/fuse: %v", err)
	}
	const secret = "s3cr3t-debug-fuse-value"
	dir := filetree.Write(t, "", map[string]string{
		"prod.yaml": "values:\n  pw:\n    fn::secret: " + secret + "\n  files:\n    TOKEN: ${pw}\n",
	})
	tests := []struct {
		name  string
		flags []string
		logs  bool
	}{
		{"with --debug-fuse", []string{"--debug-fuse"}, true},
		{"without", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mnt := t.TempDir()
			p := escfstest.MountAt(t, escfstest.Options{}, mnt, append([]string{"--dir", dir, "mount"}, tc.flags...)...)
			if b := p.WaitReadable(t, filepath.Join(mnt, "prod", "files", "TOKEN")); string(b) != secret {
				t.Fatalf("files/TOKEN = %q", b)
			}
			// stderr reaches the buffer through a pipe: give the lines of the
			// read just served a moment to arrive (bounded)
			var log string
			var hasLookup, hasRead bool
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				log = p.Log()
				hasLookup = strings.Contains(log, `LOOKUP`) && strings.Contains(log, `\"TOKEN\"`)
				hasRead = strings.Contains(log, "READ n")
				if !tc.logs || (hasLookup && hasRead) || time.Now().After(deadline) {
					break
				}
			}
			if hasLookup != tc.logs || hasRead != tc.logs {
				t.Errorf("LOOKUP of TOKEN logged: %v, READ logged: %v; want %v\n%s", hasLookup, hasRead, tc.logs, log)
			}
			if strings.Contains(log, secret) || strings.Contains(log, secret[:8]) {
				t.Errorf("the log holds (part of) the secret read:\n%s", log)
			}
		})
	}
}
