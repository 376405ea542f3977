package fs

// Benchmarks of the mount against tmpfs (/dev/shm), each reporting its
// figures as ratios against a baseline measured in the same run, in
// alternating batches so both see the same machine.
//
// Each benchmark takes a fixed number of samples per b.N iteration (run them
// with -benchtime 1x, as make bench does). The figures are percentiles of
// per-operation latencies, which need a known, sufficient number of samples
// rather than the ~1 s of total time the default b.N scaling aims at, and
// the operations differ by four orders of magnitude (a 1 µs stat, a 200 ms
// walk of 1,000 environments): one b.N for all would run the walk for
// minutes or the stat too few times.
//
// The mount is served by a child process (this test binary, re-executed with
// benchServeEnv set), as escfs is in production: readers and the daemon in
// different processes. The child unmounts when its stdin reaches EOF, which
// happens when the benchmark process dies however it dies (a -timeout panic,
// see enforceTimeout; a kill), so a killed benchmark leaves no mount behind:
// the benchmark process never serves a mount it reads, so nothing it holds
// can keep its own server from answering or its mount busy.

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/eval/evaltest"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/providers/builtin"
	"github.com/escfs/escfs/providers/token"
)

// benchServeEnv, when set (to a JSON benchServeConfig), makes this test
// binary serve a mount instead of running tests; benchOrphanEnv makes it a
// benchmark-like process that starts such a server and reads from it until
// it is killed (TestKilledBenchmarkLeavesNoMount).
const (
	benchServeEnv  = "ESCFS_BENCH_SERVE"
	benchOrphanEnv = "ESCFS_BENCH_ORPHAN"
)

// init runs the child modes before the testing package starts: a child
// must not run tests, and must not run TestMain's clearing of mounts.
func init() {
	if cfg := os.Getenv(benchServeEnv); cfg != "" {
		os.Exit(serveBench(cfg, os.Stdin, os.Stdout))
	}
	if cfg := os.Getenv(benchOrphanEnv); cfg != "" {
		os.Exit(orphanBench(cfg))
	}
}

// benchServeConfig is what a benchmark's mount server serves.
type benchServeConfig struct {
	Dir         string // definitions directory
	Mountpoint  string // an existing directory
	Refresh     eval.RefreshPolicy
	Verbose     bool          // log warnings to stderr
	EvalTimeout time.Duration // 0: 10 s
}

// serveBench mounts the store of the JSON benchServeConfig cfg, writes
// "ready" to out, then answers the commands it reads from in, one a line:
//
//	evaluations      -> "evaluations N" (eval.Store.Evaluations)
//	rescan NAME      -> "rescanned" (drops NAME's snapshot)
//
// At EOF on in (the benchmark process ended or died), SIGTERM or SIGINT it
// unmounts, lazily if the mount is still busy, and returns the exit code.
func serveBench(cfg string, in io.Reader, out io.Writer) int {
	var c benchServeConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintf(os.Stderr, "bench server: config: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if c.Verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if c.EvalTimeout == 0 {
		c.EvalTimeout = 10 * time.Second
	}
	source := &evaltest.Manual{Watching: true, Source: &eval.DirSource{Dir: c.Dir, Evaluator: &eval.Evaluator{Providers: builtin.Registry()},
		Debounce: 20 * time.Millisecond}}
	store, err := eval.NewStore(eval.StoreOptions{
		Source:      source,
		FilesDir:    FilesDir(c.Mountpoint),
		EvalTimeout: c.EvalTimeout,
		Refresh:     c.Refresh,
		Logger:      logger,
	})
	if err == nil {
		err = store.Watch()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench server: store: %v\n", err)
		return 1
	}
	defer store.Close()
	m, err := New(Config{Store: store, Mountpoint: c.Mountpoint, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Logger: logger})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench server: %v\n", err)
		return 1
	}
	defer closeBenchMount(m)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	fmt.Fprintln(out, "ready")
	for {
		select {
		case <-stop:
			return 0
		case cmd, ok := <-cmds:
			if !ok {
				return 0
			}
			fmt.Fprintln(out, answerBench(store, source, cmd))
		}
	}
}

// answerBench answers one command of the bench server's protocol.
func answerBench(store *eval.Store, source *evaltest.Manual, cmd string) string {
	verb, arg, _ := strings.Cut(cmd, " ")
	switch verb {
	case "evaluations":
		return "evaluations " + strconv.FormatInt(store.Evaluations(), 10)
	case "rescan":
		n, err := eval.ParseName(arg)
		if err == nil {
			err = source.Rescan(n)
		}
		if err != nil {
			return "error " + err.Error()
		}
		return "rescanned"
	}
	return "error unknown command " + strconv.Quote(cmd)
}

// closeBenchMount unmounts m; if it does not stop, it detaches the mount
// point so nothing is left in the mount table.
func closeBenchMount(m *Mount) {
	if err := m.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "bench server: %v; detaching\n", err)
		if err := unix.Unmount(m.Mountpoint(), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			fmt.Fprintf(os.Stderr, "bench server: detach: %v\n", err)
		}
	}
}

// benchServer is a running mount server child.
type benchServer struct {
	mnt    string
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string   // the server's answers, closed at its EOF
	exited chan struct{} // closed when the child has exited
}

// spawnBenchServer starts a server child for cfg and waits (15 s at most)
// until it serves.
func spawnBenchServer(cfg benchServeConfig) (*benchServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), benchServeEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bench server: %w", err)
	}
	s := &benchServer{mnt: cfg.Mountpoint, cmd: cmd, in: in, lines: make(chan string, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		cmd.Wait()
		close(s.exited)
	}()
	if line, err := s.next(15 * time.Second); err != nil || line != "ready" {
		s.stop()
		return nil, fmt.Errorf("bench server did not start: %q %v", line, err)
	}
	return s, nil
}

// next returns the server's next line, waiting at most limit.
func (s *benchServer) next(limit time.Duration) (string, error) {
	select {
	case line, ok := <-s.lines:
		if !ok {
			return "", errors.New("bench server exited")
		}
		return line, nil
	case <-time.After(limit):
		return "", fmt.Errorf("bench server: no answer in %v", limit)
	}
}

// ask sends one command and returns the answer.
func (s *benchServer) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		return "", err
	}
	return s.next(10 * time.Second)
}

// stop ends the server as a dying benchmark process would (EOF on its
// stdin), kills it if it does not exit within 10 s, and detaches whatever
// it left mounted.
func (s *benchServer) stop() error {
	s.in.Close()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	if mounted(s.mnt) {
		unix.Unmount(s.mnt, unix.MNT_DETACH)
		return fmt.Errorf("the bench server left %s mounted", s.mnt)
	}
	return nil
}

// mounted reports whether an escfs mount is at mnt.
func mounted(mnt string) bool {
	mounts, err := Mounts()
	return err == nil && slices.Contains(mounts, mnt)
}

// processStart is when this test binary started, as -test.timeout counts.
var processStart = time.Now()

var benchAlarm sync.Once

// enforceTimeout makes -timeout end a benchmark run that overruns it, as it
// ends a test run: Go's testing package stops its alarm before the
// benchmarks run (testing.M.Run) and go test sets no kill timer when -bench
// is given, so a benchmark stuck on a mount would otherwise run forever. The
// panic kills the process with every goroutine's stack, like the alarm of
// tests; the mount servers see their stdin close and unmount.
func enforceTimeout() {
	benchAlarm.Do(func() {
		f := flag.Lookup("test.timeout")
		if f == nil {
			return
		}
		d, ok := f.Value.(flag.Getter).Get().(time.Duration)
		if !ok || d <= 0 {
			return
		}
		time.AfterFunc(time.Until(processStart.Add(d)), func() {
			debug.SetTraceback("all")
			panic(fmt.Sprintf("benchmarks timed out after %v (-timeout)", d))
		})
	})
}

// benchMount is a mount served by a child process for one benchmark.
type benchMount struct {
	tb  testing.TB
	dir string
	srv *benchServer
}

// startBenchMount writes defs (as mountT does) into a temporary directory
// and has a child process mount them; cleanup stops it and checks that no
// mount is left.
func startBenchMount(tb testing.TB, defs map[string]string, policy eval.RefreshPolicy) *benchMount {
	tb.Helper()
	enforceTimeout()
	dir := tb.TempDir()
	for p, content := range defs {
		filetree.WriteFile(tb, filepath.Join(dir, p), content)
	}
	mnt := tb.TempDir()
	srv, err := spawnBenchServer(benchServeConfig{Dir: dir, Mountpoint: mnt, Refresh: policy, Verbose: testing.Verbose()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.stop(); err != nil {
			tb.Error(err)
		}
	})
	return &benchMount{tb: tb, dir: dir, srv: srv}
}

// path returns the path of rel inside the mount.
func (bm *benchMount) path(rel ...string) string {
	return filepath.Join(append([]string{bm.srv.mnt}, rel...)...)
}

// evaluations returns how many evaluations the server's store started.
func (bm *benchMount) evaluations() int64 {
	bm.tb.Helper()
	answer, err := bm.srv.ask("evaluations")
	n, perr := strconv.ParseInt(strings.TrimPrefix(answer, "evaluations "), 10, 64)
	if err != nil || perr != nil {
		bm.tb.Fatalf("evaluations: %q %v", answer, err)
	}
	return n
}

// rescan drops the snapshot of the environment name.
func (bm *benchMount) rescan(name string) {
	bm.tb.Helper()
	if answer, err := bm.srv.ask("rescan " + name); err != nil || answer != "rescanned" {
		bm.tb.Fatalf("rescan %s: %q %v", name, answer, err)
	}
}

// tmpfsDir returns a fresh directory on tmpfs (/dev/shm), removed at the end.
func tmpfsDir(tb testing.TB) string {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		tb.Fatalf("/dev/shm is not a tmpfs (%v): the benchmarks compare with one", err)
	}
	d, err := os.MkdirTemp("/dev/shm", "escfs-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// latencies are per-operation durations.
type latencies []time.Duration

// pct returns the q-th percentile (0 < q <= 100), nearest rank.
func (l latencies) pct(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*q/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// report reports the p50 and p99 of subject and of base, and their ratios
// subject/base as "x-NAME-p50" and "x-NAME-p99"; ns/op is subject's p50.
func report(b *testing.B, baseName string, base, subject latencies) {
	b.Helper()
	for _, q := range []float64{50, 99} {
		s, r := subject.pct(q), base.pct(q)
		b.ReportMetric(float64(s.Nanoseconds()), fmt.Sprintf("p%.0f-ns", q))
		b.ReportMetric(float64(r.Nanoseconds()), fmt.Sprintf("p%.0f-ns-%s", q, baseName))
		b.ReportMetric(ratio(s, r), fmt.Sprintf("x-%s-p%.0f", baseName, q))
		b.Logf("p%.0f over %d samples: escfs %v, %s %v, ratio %.2fx", q, len(subject), s, baseName, r, ratio(s, r))
	}
	b.ReportMetric(float64(subject.pct(50).Nanoseconds()), "ns/op")
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// compare times n calls of base and of subject, in alternating batches so
// that both see the same machine, b.N times over, and reports both
// latency distributions and their ratios (see report).
func compare(b *testing.B, baseName string, n int, base, subject func() error) {
	b.Helper()
	var lBase, lSubject latencies
	const batch = 50
	b.ResetTimer()
	for range b.N {
		for done := 0; done < n; done += batch {
			k := min(batch, n-done)
			lBase = timeEach(b, lBase, k, base)
			lSubject = timeEach(b, lSubject, k, subject)
		}
	}
	b.StopTimer()
	report(b, baseName, lBase, lSubject)
}

// timeEach calls op k times, appending each call's duration to l.
func timeEach(b *testing.B, l latencies, k int, op func() error) latencies {
	for range k {
		start := time.Now()
		err := op()
		l = append(l, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// readAll is open+read+close of p, failing unless it holds want.
func readAll(p string, want []byte) func() error {
	return func() error {
		got, err := os.ReadFile(p)
		if err == nil && !bytes.Equal(got, want) {
			err = fmt.Errorf("read %d bytes of %s, want %d", len(got), p, len(want))
		}
		return err
	}
}

// warmFile evaluates rel in the mount and copies its bytes to a tmpfs file
// of the same name; it returns both paths and the bytes.
func warmFile(b *testing.B, bm *benchMount, rel string) (mnt, ref string, data []byte) {
	b.Helper()
	mnt = bm.path(rel)
	data = mustRead(b, mnt)
	ref = filepath.Join(tmpfsDir(b), filepath.Base(rel))
	if err := os.WriteFile(ref, data, 0o400); err != nil {
		b.Fatal(err)
	}
	return mnt, ref, data
}

// warmReadSamples is how many open+read+close each side does per b.N: the
// p99 is then the 40th worst.
const warmReadSamples = 4000

// BenchmarkWarmRead: open+read+close of an evaluated MNT/x/env against the
// same bytes in a file on tmpfs.
func BenchmarkWarmRead(b *testing.B) {
	bm := startBenchMount(b, map[string]string{"x.yaml": filesDef}, eval.RefreshPolicy{})
	p, ref, data := warmFile(b, bm, "x/env")
	compare(b, "tmpfs", warmReadSamples, readAll(ref, data), readAll(p, data))
}

// Parallel readers: parallelReaders goroutines each do parallelSamples
// open+read+close per side per b.N.
const (
	parallelReaders = 8
	parallelSamples = 500
)

// BenchmarkParallelRead: 8 goroutines reading MNT/x/env at once against 8
// reading the same bytes on tmpfs, in alternating batches. Reports the
// per-read latency percentiles and, as x-tmpfs-wall, the ratio of the wall
// time of all reads (throughput).
func BenchmarkParallelRead(b *testing.B) {
	bm := startBenchMount(b, map[string]string{"x.yaml": filesDef}, eval.RefreshPolicy{})
	p, ref, data := warmFile(b, bm, "x/env")
	var lBase, lSubject latencies
	var wallBase, wallSubject time.Duration
	const batch = 25
	b.ResetTimer()
	for range b.N {
		for done := 0; done < parallelSamples; done += batch {
			k := min(batch, parallelSamples-done)
			wallBase += parallelEach(b, &lBase, k, readAll(ref, data))
			wallSubject += parallelEach(b, &lSubject, k, readAll(p, data))
		}
	}
	b.StopTimer()
	report(b, "tmpfs", lBase, lSubject)
	b.ReportMetric(ratio(wallSubject, wallBase), "x-tmpfs-wall")
	b.Logf("wall time of all reads: escfs %v, tmpfs %v", wallSubject, wallBase)
}

// parallelEach runs op k times in each of parallelReaders goroutines,
// appending every call's duration to l, and returns the wall time.
func parallelEach(b *testing.B, l *latencies, k int, op func() error) time.Duration {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, parallelReaders)
	start := time.Now()
	for range parallelReaders {
		wg.Go(func() {
			var mine latencies
			for range k {
				t := time.Now()
				err := op()
				mine = append(mine, time.Since(t))
				if err != nil {
					errs <- err
					return
				}
			}
			mu.Lock()
			*l = append(*l, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	wall := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return wall
}

// catSamples is how many cat processes each side runs per b.N (~3 ms each).
const catSamples = 300

// BenchmarkCat: a whole `cat MNT/x/env` process (fork, exec, open, read,
// write, exit) against `cat` of the same bytes on tmpfs; output to
// /dev/null, after a first run that checks the bytes.
func BenchmarkCat(b *testing.B) {
	cat := needTool(b, "cat", "coreutils")
	bm := startBenchMount(b, map[string]string{"x.yaml": filesDef}, eval.RefreshPolicy{})
	p, ref, data := warmFile(b, bm, "x/env")
	for _, f := range []string{ref, p} {
		out, err := exec.Command(cat, f).Output()
		if err != nil || !bytes.Equal(out, data) {
			b.Fatalf("cat %s: %v, %d bytes, want %d", f, err, len(out), len(data))
		}
	}
	run := func(f string) func() error {
		return func() error { return exec.Command(cat, f).Run() }
	}
	compare(b, "tmpfs", catSamples, run(ref), run(p))
}

// statSamples is how many stats each side does per b.N (about 1 µs each).
const statSamples = 20000

// BenchmarkStat: lstat of a warm MNT/x/env against lstat of a tmpfs file.
func BenchmarkStat(b *testing.B) {
	bm := startBenchMount(b, map[string]string{"x.yaml": filesDef}, eval.RefreshPolicy{})
	p, ref, data := warmFile(b, bm, "x/env")
	stat := func(f string) func() error {
		return func() error {
			fi, err := os.Lstat(f)
			if err == nil && fi.Size() != int64(len(data)) {
				err = fmt.Errorf("stat %s: size %d, want %d", f, fi.Size(), len(data))
			}
			return err
		}
	}
	compare(b, "tmpfs", statSamples, stat(ref), stat(p))
}

// The tree BenchmarkListTree lists: 20 projects of 50 environments.
const (
	treeProjects = 20
	treeEnvs     = 50
	treeSamples  = 20 // ls -R runs per side per b.N (~0.2 s each through the mount today)
)

// BenchmarkListTree runs the real `ls -R -I files` over 1,000 environments
// (20 projects × 50) against the same directories on tmpfs, and checks
// both list the same names. The files/ directories are left out (-I):
// which files an environment has is only known by evaluating it. Nothing
// may be evaluated; ls tells directories from files by the d_type readdir
// gives, so a mount that made it stat every entry would fail here too.
func BenchmarkListTree(b *testing.B) {
	ls := needTool(b, "ls", "coreutils")
	ref := tmpfsDir(b)
	defs := map[string]string{}
	for p := range treeProjects {
		for e := range treeEnvs {
			rel := fmt.Sprintf("p%02d/e%02d", p, e)
			defs[rel+".yaml"] = simpleDef
			mirrorEnv(b, filepath.Join(ref, rel))
		}
	}
	bm := startBenchMount(b, defs, eval.RefreshPolicy{})
	list := func(root string) ([]byte, error) {
		cmd := exec.Command(ls, "-R", "-I", entryFiles, root)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		return cmd.Output()
	}
	refOut, err := list(ref)
	if err != nil {
		b.Fatal(err)
	}
	mntOut, err := list(bm.path())
	if err != nil {
		b.Fatal(err)
	}
	if got, want := strings.ReplaceAll(string(mntOut), bm.path(), "ROOT"), strings.ReplaceAll(string(refOut), ref, "ROOT"); got != want {
		b.Fatalf("ls -R of the mount differs from the tmpfs tree:\n%.2000s\nwant\n%.2000s", got, want)
	}
	if n := strings.Count(string(mntOut), "\n"+entryEnv+"\n"); n != treeProjects*treeEnvs {
		b.Fatalf("ls -R shows %d environments, want %d", n, treeProjects*treeEnvs)
	}
	run := func(root string) func() error {
		return func() error {
			cmd := exec.Command(ls, "-R", "-I", entryFiles, root)
			cmd.Env = append(os.Environ(), "LC_ALL=C")
			return cmd.Run() // to /dev/null
		}
	}
	compare(b, "tmpfs", treeSamples, run(ref), run(bm.path()))
	if n := bm.evaluations(); n != 0 {
		b.Fatalf("listing the tree evaluated %d environments, want 0", n)
	}
}

// mirrorEnv makes the directory of one environment on tmpfs: its entries as
// empty 0400 files and an empty files/ directory.
func mirrorEnv(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(dir, entryFiles), 0o700); err != nil {
		tb.Fatal(err)
	}
	for _, f := range envEntries {
		if f == entryFiles {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o400); err != nil {
			tb.Fatal(err)
		}
	}
}

// The renewing environment of BenchmarkReadDuringRenewal: a token living
// renewTTL whose provider takes renewDelay to answer, read every
// renewInterval for renewLifetimes lifetimes.
const (
	renewTTL       = 1500 * time.Millisecond
	renewDelay     = 200 * time.Millisecond
	renewLifetimes = 3
	renewInterval  = time.Millisecond // between the starts of two reads
)

// BenchmarkReadDuringRenewal reads MNT/live/env, whose short-lived token
// (providers/token) the store renews in the background (keep-warm, at a
// third of its lifetime before expiry), for three lifetimes, each read
// paired with one of a static environment of the same size, the warm
// baseline (which goes first alternates). A read starts every renewInterval whether the last returned or
// not (openLoop), so a renewal that made readers wait would show in every
// read started while it ran. It reports the p50 and p99 of both and their
// ratios (x-warm-p99 is the figure of interest), and fails unless the
// environment was renewed meanwhile and no read returned expired
// credentials.
func BenchmarkReadDuringRenewal(b *testing.B) {
	live := token.Definition(renewTTL.String(), renewDelay.String(), filepath.Join(b.TempDir(), "nofail"))
	bm := startBenchMount(b, map[string]string{
		"live.yaml": live,
		"warm.yaml": warmLike,
	}, eval.RefreshPolicy{KeepWarm: time.Minute, MinInterval: time.Millisecond})
	livePath, warmPath := bm.path("live", "env"), bm.path("warm", "env")
	b.Logf("env sizes: live %d bytes, warm %d", len(mustRead(b, livePath)), len(mustRead(b, warmPath)))
	var lWarm, lLive latencies
	evals := bm.evaluations()
	b.ResetTimer()
	for range b.N {
		for _, s := range openLoop(b, renewInterval, renewLifetimes*renewTTL, pairedReads(livePath, warmPath)) {
			if s.err != nil {
				b.Fatal(s.err)
			}
			lLive, lWarm = append(lLive, s.live), append(lWarm, s.warm)
		}
	}
	b.StopTimer()
	renewals := bm.evaluations() - evals
	if want := int64(b.N * (renewLifetimes - 1)); renewals < want {
		b.Fatalf("%d renewals during %d lifetimes of the token, want at least %d", renewals, b.N*renewLifetimes, want)
	}
	b.Logf("%d renewals, each taking %v", renewals, renewDelay)
	report(b, "warm", lWarm, lLive)
}

// warmLike is a definition without providers whose env has the shape and
// the length of that of token.Definition (which escfs gives an
// ESCFS_EXPIRES_AT): the warm baseline.
const warmLike = `values:
  environmentVariables:
    TOKEN: 0123456789abcdef0123456789abcdef
    EXPIRES: "2026-01-01T00:00:00.123456789Z"
    STATIC_EXPIRES_A: "2026-01-01T00:00:00Z"
`

// coldSamples is how many cold reads (each an evaluation) per b.N.
const coldSamples = 100

// BenchmarkColdRead: the first read of an environment after its snapshot
// was dropped (a rescan, untimed) against a warm read of it.
func BenchmarkColdRead(b *testing.B) {
	bm := startBenchMount(b, map[string]string{"x.yaml": filesDef}, eval.RefreshPolicy{})
	p := bm.path("x", "env")
	mustRead(b, p)
	read := func() error { _, err := os.ReadFile(p); return err }
	var lWarm, lCold latencies
	evals := bm.evaluations()
	b.ResetTimer()
	for range b.N {
		for range coldSamples {
			lWarm = timeEach(b, lWarm, 1, read)
			b.StopTimer()
			bm.rescan("x")
			b.StartTimer()
			lCold = timeEach(b, lCold, 1, read)
		}
	}
	b.StopTimer()
	if got := bm.evaluations() - evals; got < int64(len(lCold)) {
		b.Fatalf("%d cold reads caused only %d evaluations", len(lCold), got)
	}
	report(b, "warm", lWarm, lCold)
}

// orphanBench is a benchmark process in miniature for
// TestKilledBenchmarkLeavesNoMount: it starts a mount server for the JSON
// benchServeConfig cfg, prints the mount point, then reads a file of the
// mount (holding it open) until it is killed.
func orphanBench(cfg string) int {
	var c benchServeConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintf(os.Stderr, "orphan: %v\n", err)
		return 2
	}
	if _, err := spawnBenchServer(c); err != nil {
		fmt.Fprintf(os.Stderr, "orphan: %v\n", err)
		return 1
	}
	p := filepath.Join(c.Mountpoint, "x", "env")
	f, err := os.Open(p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "orphan: %v\n", err)
		return 1
	}
	defer f.Close()
	fmt.Println("serving")
	for {
		if _, err := os.ReadFile(p); err != nil {
			fmt.Fprintf(os.Stderr, "orphan: %v\n", err)
			return 1
		}
	}
}

// TestKilledBenchmarkLeavesNoMount kills (SIGKILL, the harshest end) a
// process that reads a mount its server child serves, as the benchmarks do,
// while it holds a file of the mount open, and checks that the mount leaves
// the mount table and its mount point answers: a benchmark killed by
// -timeout leaves no dead mount behind.
func TestKilledBenchmarkLeavesNoMount(t *testing.T) {
	needRoot(t, "mounts")
	dir, mnt := t.TempDir(), t.TempDir()
	filetree.WriteFile(t, filepath.Join(dir, "x.yaml"), simpleDef)
	js, err := json.Marshal(benchServeConfig{Dir: dir, Mountpoint: mnt})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), benchOrphanEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	// Its own process group, which its server child joins: if the server
	// hangs, the cleanup can end both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { // never leave a process or a mount behind, whatever failed
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("the orphan (pid %d) did not exit", cmd.Process.Pid)
		}
		if mounted(mnt) {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	serving := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		serving <- line
	}()
	select {
	case line := <-serving:
		if line != "serving\n" {
			t.Fatalf("the orphan did not start serving: %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the orphan did not start serving within 20s")
	}
	if !mounted(mnt) {
		t.Fatalf("%s is not mounted while the orphan reads it", mnt)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed orphan did not exit within 10s (its server does not answer)")
	}
	took := eventually(t, 10*time.Second, "the mount gone after its reader was killed", func() (bool, string) {
		return !mounted(mnt), "still in /proc/self/mountinfo"
	})
	t.Logf("the mount left the mount table %v after the kill", took)
	done := make(chan error, 1)
	go func() { _, err := os.ReadDir(mnt); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ls of the old mount point: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ls of the old mount point hangs")
	}
}

// openLoop starts op every interval for d, each call in a goroutine of its
// own, and returns every result once all calls are done (waiting at most
// 20 s more). A call that waits does not delay the next one: a reader
// blocked for 200 ms accounts for the 200 ms of samples it blocked, not
// for one slow sample among many fast ones (no coordinated omission).
func openLoop[T any](tb testing.TB, interval, d time.Duration, op func() T) []T {
	tb.Helper()
	results := make(chan T, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	for next := start; next.Before(start.Add(d)); next = next.Add(interval) {
		time.Sleep(time.Until(next))
		wg.Go(func() { results <- op() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var out []T
	limit := time.After(d + 20*time.Second)
	for {
		select {
		case r := <-results:
			out = append(out, r)
		case <-done:
			for {
				select {
				case r := <-results:
					out = append(out, r)
				default:
					return out
				}
			}
		case <-limit:
			tb.Fatalf("reads still running 20s after the last started")
			return nil
		}
	}
}

// liveSample is one open-loop read of a renewing environment's env and of
// a warm one's.
type liveSample struct {
	live, warm time.Duration
	content    string // of the renewing env
	err        error
}

// pairedReads returns an openLoop op reading live and warm with
// readLiveAndWarm, the warm one first every other call.
func pairedReads(live, warm string) func() liveSample {
	var n atomic.Int64
	return func() liveSample { return readLiveAndWarm(live, warm, n.Add(1)%2 == 0) }
}

// readLiveAndWarm reads live (an env with an EXPIRES line, which must not
// have passed when the read returns) and warm, timing each; warmFirst says
// which goes first, so that alternating it leaves neither the benefit of
// the other's warm CPU caches.
func readLiveAndWarm(live, warm string, warmFirst bool) liveSample {
	var s liveSample
	readWarm := func() {
		start := time.Now()
		_, err := os.ReadFile(warm)
		s.warm = time.Since(start)
		s.err = cmp.Or(s.err, err)
	}
	if warmFirst {
		readWarm()
	}
	start := time.Now()
	b, err := os.ReadFile(live)
	s.live = time.Since(start)
	s.content = string(b)
	s.err = cmp.Or(s.err, err, checkExpires(live, b))
	if !warmFirst {
		readWarm()
	}
	return s
}

// checkExpires fails env content b (read from p) without an EXPIRES line,
// or whose EXPIRES has passed.
func checkExpires(p string, b []byte) error {
	if b == nil {
		return nil // the read failed
	}
	m := expiresLine.FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("no EXPIRES in %s:\n%s", p, b)
	}
	exp, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil {
		return err
	}
	if now := time.Now(); !now.Before(exp) {
		return fmt.Errorf("read credentials that expired at %v (now %v)", exp, now)
	}
	return nil
}
