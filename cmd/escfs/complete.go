package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/proppath"
)

// maxCompletions bounds the property paths offered for one environment, so
// that a huge definition cannot make a TAB slow.
const maxCompletions = 5000

// completionTimeout bounds the requests one completion makes to Pulumi
// Cloud (--cloud).
const completionTimeout = 10 * time.Second

// completeEnvFirst completes an environment name as the first argument and,
// after it, property paths when paths is set (open ENV PATH), else the
// shell's default (run's command line).
func completeEnvFirst(g *globalFlags, paths bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		switch {
		case len(args) == 0:
			return envNames(g, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
		case paths && len(args) == 1:
			return propertyPaths(g, args[0], toComplete), cobra.ShellCompDirectiveNoFileComp
		case paths:
			return nil, cobra.ShellCompDirectiveNoFileComp
		default:
			return nil, cobra.ShellCompDirectiveDefault
		}
	}
}

// completeEnvs completes environment names not given yet (check ENV...).
func completeEnvs(g *globalFlags) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return envNames(g, toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// envNames returns the environment names of the definitions directory (or
// of Pulumi Cloud) that start with prefix, except those in exclude. Nothing
// is evaluated.
func envNames(g *globalFlags, prefix string, exclude []string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	_, tree, err := g.source(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range tree.Definitions() {
		n := d.Name.Short()
		if strings.HasPrefix(n, prefix) && !slices.Contains(exclude, n) {
			out = append(out, n)
		}
	}
	return out
}

// propertyPaths returns the property paths of the environment name that
// start with prefix, read from the values of its definition and of its
// imports without evaluating anything: a fn:: call (fn::open::aws-login,
// fn::secret, ...) is offered itself, never what it returns.
func propertyPaths(g *globalFlags, name, prefix string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	read, err := g.definitionReader(ctx)
	if err != nil {
		return nil
	}
	c := &pathCollector{read: read, seen: map[string]bool{}, visited: map[eval.Name]bool{}}
	c.definition(name, 0)
	var out []string
	for _, p := range c.paths {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// definitionReader returns how completion reads the definition of an
// environment: the file of the definitions directory or, with --cloud, the
// definition Pulumi Cloud keeps (bounded by ctx).
func (g *globalFlags) definitionReader(ctx context.Context) (func(eval.Name) (*yaml.Node, bool), error) {
	if g.cloudSelected() {
		src, err := g.cloudSource(ctx, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, err
		}
		return func(n eval.Name) (*yaml.Node, bool) {
			def, err := src.Definition(ctx, n)
			if err != nil {
				return nil, false
			}
			return parseYAML(def)
		}, nil
	}
	tree, err := g.scanTree()
	if err != nil {
		return nil, err
	}
	return func(n eval.Name) (*yaml.Node, bool) {
		def, err := tree.Lookup(n.String())
		if err != nil {
			return nil, false
		}
		return readYAML(def.Path)
	}, nil
}

// pathCollector gathers property paths from definitions, imports first.
type pathCollector struct {
	read    func(eval.Name) (*yaml.Node, bool) // a definition
	paths   []string                           // in order of discovery
	seen    map[string]bool                    // paths already in paths
	visited map[eval.Name]bool                 // definitions already read
}

// definition adds the paths of the environment name and of its imports.
// An import of a version ("base@3") offers the paths of the environment's
// current definition.
func (c *pathCollector) definition(name string, depth int) {
	name, _, _ = strings.Cut(name, "@")
	n, err := eval.ParseName(name)
	if err != nil || c.visited[n] || depth > limits.MaxImportDepth {
		return
	}
	c.visited[n] = true
	doc, ok := c.read(n)
	if !ok {
		return
	}
	for _, imp := range eval.ImportsOf(doc) {
		c.definition(imp.Name, depth+1)
	}
	if values := valuesOf(doc); values != nil {
		c.walk(values, "", 0)
	}
}

// readYAML parses a definition of at most the --max-definition-size.
func readYAML(path string) (*yaml.Node, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, limits.MaxDefinitionSize+1))
	if err != nil {
		return nil, false
	}
	return parseYAML(src)
}

// parseYAML parses a definition of at most the --max-definition-size.
func parseYAML(src []byte) (*yaml.Node, bool) {
	if int64(len(src)) > limits.MaxDefinitionSize {
		return nil, false
	}
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, false
	}
	return doc.Content[0], true
}

// valuesOf returns the values node of a definition, or nil.
func valuesOf(top *yaml.Node) *yaml.Node {
	if top.Kind != yaml.MappingNode {
		return nil
	}
	var values *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "values" {
			values = top.Content[i+1]
		}
	}
	return values
}

// walk adds the paths below n, whose own path is prefix. It does not look
// inside fn:: calls (their result is known only by evaluating) or aliases.
func (c *pathCollector) walk(n *yaml.Node, prefix string, depth int) {
	if depth > limits.MaxNesting || isCall(n) {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := prefix + proppath.Key(n.Content[i].Value, prefix == "")
			c.add(p)
			c.walk(n.Content[i+1], p, depth+1)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := prefix + "[" + strconv.Itoa(i) + "]"
			c.add(p)
			c.walk(item, p, depth+1)
		}
	}
}

// add records a path once, up to maxCompletions.
func (c *pathCollector) add(p string) {
	if !c.seen[p] && len(c.paths) < maxCompletions {
		c.seen[p] = true
		c.paths = append(c.paths, p)
	}
}

// isCall reports whether n is a builtin function call: a map of one key
// starting with "fn::".
func isCall(n *yaml.Node) bool {
	return n.Kind == yaml.MappingNode && len(n.Content) == 2 && strings.HasPrefix(n.Content[0].Value, "fn::")
}
