package fs

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escfs/escfs/providers/token"
)

// interruptedReader is a reader program that installs a SIGUSR1 handler,
// says "ready", reads its argument and prints what it got.
type interruptedReader struct {
	name string
	argv []string
	want func(t *testing.T, out string, env []byte)
}

// TestSignalledReaderWaits: a reader that gets signals while it waits for
// the first evaluation (a shell gets SIGCHLD all the time; the kernel turns
// each into a FUSE INTERRUPT) must get the environment, neither EIO nor a
// size-0 file that bash's source reads as empty.
func TestSignalledReaderWaits(t *testing.T) {
	needTool(t, "python3", "python3")
	needTool(t, "bash", "bash")
	dir := t.TempDir()
	readers := []interruptedReader{
		{
			name: "python",
			argv: []string{"python3", "-c", `
import signal, sys
n = 0
def handler(*_):
    global n
    n += 1
signal.signal(signal.SIGUSR1, handler)
print("ready", flush=True)
with open(sys.argv[1], "rb") as f:
    data = f.read()
signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the test signals until exit
print("signals", n)
sys.stdout.write(data.decode())
`},
			want: func(t *testing.T, out string, env []byte) {
				if !strings.HasSuffix(out, string(env)) {
					t.Fatalf("python read\n%s\nwant it to end with env:\n%s", out, env)
				}
			},
		},
		{
			name: "bash source",
			argv: []string{"bash", "-c", `trap 'n=$((n+1))' USR1; echo ready; source "$1" || exit 9; echo "signals $n"; echo "TOKEN=$TOKEN"`, "bash"},
			want: func(t *testing.T, out string, env []byte) {
				tok := expiresLine.ReplaceAll(env, nil)
				i := bytes.Index(tok, []byte("export TOKEN='"))
				if i < 0 {
					t.Fatalf("no TOKEN in env:\n%s", env)
				}
				val := strings.SplitN(string(tok[i+len("export TOKEN='"):]), "'", 2)[0]
				if !strings.Contains(out, "TOKEN="+val+"\n") {
					t.Fatalf("bash sourced\n%s\nwant TOKEN=%s", out, val)
				}
			},
		},
	}
	defs := map[string]string{}
	for i := range readers {
		defs["r"+string(rune('0'+i))+".yaml"] = token.Definition("1h", "1500ms", filepath.Join(dir, "nofail"))
	}
	tm := mountT(t, defs)
	for i, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			env := "r" + string(rune('0'+i))
			out := readWhileSignalled(t, append(r.argv, tm.path(env, "env")))
			if !strings.Contains(out, "signals ") || strings.Contains(out, "signals 0\n") || strings.Contains(out, "signals \n") {
				t.Fatalf("the reader got no signal while it waited, so this proves nothing:\n%s", out)
			}
			r.want(t, out, mustRead(t, tm.path(env, "env")))
			if got := tm.store.Evaluations(); got != int64(i+1) {
				t.Fatalf("%d evaluations after %d environments were read once", got, i+1)
			}
		})
	}
}

// readWhileSignalled runs argv, waits for its "ready" line, then sends it
// SIGUSR1 every 20ms until it exits (at most 20 s), and returns what it
// printed after "ready".
func readWhileSignalled(t *testing.T, argv []string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var b strings.Builder
		ready := false
		for sc.Scan() {
			if !ready {
				ready = sc.Text() == "ready"
				if ready {
					lines <- "ready"
				}
				continue
			}
			b.WriteString(sc.Text() + "\n")
		}
		done <- cmd.Wait()
		lines <- b.String()
	}()
	select {
	case <-lines:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s never got ready: %s", argv[0], stderr.String())
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(20 * time.Second)
	for {
		select {
		case err := <-done:
			out := <-lines
			if err != nil {
				t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", argv[0], err, out, stderr.String())
			}
			return out
		case <-tick.C:
			_ = cmd.Process.Signal(syscall.SIGUSR1)
		case <-limit:
			_ = cmd.Process.Kill()
			t.Fatalf("%s still reading after 20s", argv[0])
		}
	}
}
