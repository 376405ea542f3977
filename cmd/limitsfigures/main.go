// Command limitsfigures measures what a definition at each of escfs's
// evaluation limits costs: it writes one definition set at each default
// limit into a temporary directory, runs `escfs check` on each, and prints
// the wall time and peak RSS, the figures the README's Limits table quotes.
//
//	go run ./cmd/limitsfigures [path/to/escfs]
//
// Without an argument it builds ./cmd/escfs first.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/escfs/escfs/eval"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "limitsfigures:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "escfs-limits-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "escfs")
	if len(os.Args) > 1 {
		bin = os.Args[1]
	} else if out, err := exec.Command("go", "build", "-o", bin, "./cmd/escfs").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	defs := filepath.Join(dir, "defs")
	if err := os.Mkdir(defs, 0o755); err != nil {
		return err
	}
	cases := []struct{ limit, env string }{
		{fmt.Sprintf("definition size %d B", eval.DefaultMaxDefinitionSize), "big"},
		{fmt.Sprintf("nesting %d", eval.DefaultMaxNesting), "nest"},
		{fmt.Sprintf("import depth %d", eval.DefaultMaxImportDepth), "c0"},
		{fmt.Sprintf("expanded imports %d", eval.DefaultMaxImports), "fan"},
	}
	if err := writeDefinitions(defs); err != nil {
		return err
	}
	fmt.Printf("%-32s %8s %14s\n", "at the limit", "time", "peak RSS")
	for _, c := range cases {
		start := time.Now()
		cmd := exec.Command(bin, "--dir", defs, "check", c.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("escfs check %s: %v\n%s", c.env, err, out)
		}
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
		fmt.Printf("%-32s %7.2fs %11d MB\n", c.limit, time.Since(start).Seconds(), rss/1024)
	}
	return nil
}

// writeDefinitions writes a definition at each limit, just under it.
func writeDefinitions(dir string) error {
	files := map[string]string{}
	var b strings.Builder
	b.WriteString("values:\n")
	for i := 0; b.Len() < eval.DefaultMaxDefinitionSize-64; i++ {
		fmt.Fprintf(&b, "  key%08d: value%08d\n", i, i)
	}
	files["big.yaml"] = b.String()
	depth := eval.DefaultMaxNesting - 2 // values: and the key's map count too
	files["nest.yaml"] = "values:\n  a: " + strings.Repeat("{a: ", depth) + "1" + strings.Repeat("}", depth) + "\n"
	files["fan.yaml"] = "imports:\n" + strings.Repeat("  - leaf\n", eval.DefaultMaxImports-1)
	files["leaf.yaml"] = "values:\n  leaf: 1\n"
	for i := range eval.DefaultMaxImportDepth {
		imp := ""
		if i < eval.DefaultMaxImportDepth-1 {
			imp = fmt.Sprintf("imports:\n  - c%d\n", i+1)
		}
		files[fmt.Sprintf("c%d.yaml", i)] = imp + fmt.Sprintf("values:\n  v%d: %d\n", i, i)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
