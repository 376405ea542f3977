package eval

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// inflight tracks the provider calls of one running evaluation, so that a
// timeout can say what it was waiting for: "still running: fn::open::aws-login
// at FILE:LINE:COL". It is safe for concurrent use.
type inflight struct {
	mu    sync.Mutex
	opens map[string]int // GUARDED_BY(mu): provider name -> calls running
	files []string       // GUARDED_BY(mu): definition files read, root first
}

type inflightKey struct{}

func withInflight(ctx context.Context, f *inflight) context.Context {
	return context.WithValue(ctx, inflightKey{}, f)
}

// inflightFrom returns the tracker of the evaluation ctx belongs to, or nil.
func inflightFrom(ctx context.Context) *inflight {
	f, _ := ctx.Value(inflightKey{}).(*inflight)
	return f
}

// read records a definition file the evaluation read.
func (f *inflight) read(path string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.files, path) {
		f.files = append(f.files, path)
	}
}

// begin records the start of a call of provider name; the function it
// returns records its end.
func (f *inflight) begin(name string) func() {
	if f == nil {
		return func() {}
	}
	f.mu.Lock()
	if f.opens == nil {
		f.opens = map[string]int{}
	}
	f.opens[name]++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.opens[name]--; f.opens[name] <= 0 {
			delete(f.opens, name)
		}
	}
}

// describe says which provider calls are running, each with the place of
// its fn::open in the definitions when that place is unique, or "" if none
// is running (the evaluator itself is busy).
func (f *inflight) describe() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	names := make([]string, 0, len(f.opens))
	for n := range f.opens {
		names = append(names, n)
	}
	files := slices.Clone(f.files)
	f.mu.Unlock()
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		part := "fn::open::" + n
		if at := openSites(files, n); len(at) == 1 {
			part += " at " + at[0]
		} else if len(at) > 1 {
			part += fmt.Sprintf(" (one of %d: %s)", len(at), strings.Join(at, ", "))
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// openSites returns FILE:LINE:COL of every fn::open::name key in files.
func openSites(files []string, name string) []string {
	var out []string
	for _, p := range files {
		src, err := readSmall(p)
		if err != nil {
			continue
		}
		var doc yaml.Node
		if yaml.Unmarshal(src, &doc) != nil {
			continue
		}
		stack := []*yaml.Node{&doc}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if k := n.Content[i]; k.Value == "fn::open::"+name {
						out = append(out, fmt.Sprintf("%s:%d:%d", quotePath(p), k.Line, k.Column))
					}
				}
			}
			stack = append(stack, n.Content...)
		}
	}
	slices.Sort(out)
	return out
}

// readSmall reads a definition file for a message, at most the default
// size limit of it.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, DefaultMaxDefinitionSize))
}
