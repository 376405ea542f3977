package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pulumi/esc"
)

// render fills the renderings of snap from an evaluated environment. Values
// that cannot be rendered become warnings located at their key.
func render(snap *Snapshot, env *esc.Environment, filesDir string, fileOf func(string) string) {
	props := map[string]esc.Value{}
	if env != nil {
		props = env.Properties
	}
	snap.Values = esc.NewValue(props)
	snap.Secrets = secretStrings(snap.Values)
	snap.Diagnostics = append(snap.Diagnostics, numberDiagnostics(env, snap.Secrets, fileOf)...)
	valuesJSON, err := renderJSON(snap.Values)
	if err != nil && !snap.Diagnostics.HasErrors() {
		// Not a literal (numberDiagnostics locates those): a provider's value.
		snap.Diagnostics = append(snap.Diagnostics, Diagnostic{File: snap.Path, Severity: SeverityError,
			Message: "the values have no JSON form: a number JSON cannot hold, such as infinity or NaN"})
	}
	if snap.Diagnostics.HasErrors() {
		snap.Values = esc.Value{} // with errors, a snapshot holds no renderings
		return
	}
	snap.ValuesJSON = valuesJSON

	warn := func(section, key, format string, args ...any) {
		d := Diagnostic{File: snap.Path, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...)}
		if env != nil {
			if r, ok := keyRange(env.Exprs[section], key); ok {
				d.File, d.Line, d.Column = fileOf(r.Environment), r.Begin.Line, r.Begin.Column
			}
		}
		snap.Diagnostics = append(snap.Diagnostics, d)
	}

	vars := map[string]Var{}
	var envVars, files map[string]esc.Value
	if env != nil {
		envVars, files = env.GetEnvironmentVariables(), env.GetTemporaryFiles()
	}
	for name, v := range envVars {
		vars[name] = Var{Name: name, Value: v.Value.(string), Secret: v.Secret}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) { // sorted: warnings in a stable order
		v := files[name]
		if err := checkFileName(name); err != nil {
			warn("files", name, "file %q left out: %v", name, err)
			continue
		}
		content := v.Value.(string)
		snap.Files = append(snap.Files, File{Name: name, Content: []byte(content), Secret: v.Secret})
		vars[name] = Var{Name: name, Value: filepath.Join(filesDir, name), File: true}
	}
	sort.Slice(snap.Files, func(i, j int) bool { return snap.Files[i].Name < snap.Files[j].Name })

	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	var shell, dotenv bytes.Buffer
	for _, name := range names {
		v := vars[name]
		section := "environmentVariables"
		if v.File {
			section = "files"
		}
		if strings.IndexByte(v.Value, 0) >= 0 {
			warn(section, name, "variable %s left out: its value holds a NUL byte, which no environment variable can", name)
			continue
		}
		if name == "" || strings.ContainsAny(name, "=\x00") {
			warn(section, name, "variable %q left out: no environment variable can have this name", name)
			continue
		}
		snap.Vars = append(snap.Vars, v)
		if !IsShellName(name) {
			warn(section, name, "variable %q left out of env and dotenv: not a shell variable name", name)
			continue
		}
		fmt.Fprintf(&shell, "export %s=%s\n", name, ShellQuote(v.Value))
		line, err := dotenvLine(name, v.Value)
		if err != nil {
			warn(section, name, "variable %s left out of dotenv: %v", name, err)
			continue
		}
		dotenv.WriteString(line)
	}
	snap.Env, snap.Dotenv = shell.Bytes(), dotenv.Bytes()
}

// renderJSON renders values as `esc open -f json` does: Go's encoding/json,
// two-space indent, sorted keys, secrets revealed. It fails, as esc does, on
// a number JSON cannot hold (the evaluator reads YAML .inf as "+Inf").
func renderJSON(v esc.Value) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v.ToJSON(false)); err != nil {
		return nil, fmt.Errorf("encode values: %w", err)
	}
	return b.Bytes(), nil
}

// secretStrings returns the string form of every secret scalar in v, longest
// first so that redaction replaces a secret before any secret inside it.
func secretStrings(v esc.Value) []string {
	seen := map[string]bool{}
	var walk func(v esc.Value, secret bool)
	walk = func(v esc.Value, secret bool) {
		secret = secret || v.Secret
		switch x := v.Value.(type) {
		case map[string]esc.Value:
			for _, c := range x {
				walk(c, secret)
			}
		case []esc.Value:
			for _, c := range x {
				walk(c, secret)
			}
		case nil:
		default:
			if s := v.ToString(false); secret && s != "" {
				seen[s] = true
			}
		}
	}
	walk(v, false)
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// keyRange finds where key is defined in an object expression or in the
// expressions it merges over (its bases, e.g. from imports).
func keyRange(x esc.Expr, key string) (esc.Range, bool) {
	for e := &x; e != nil; e = e.Base {
		if r, ok := e.KeyRanges[key]; ok {
			return r, true
		}
	}
	return esc.Range{}, false
}

// checkFileName accepts a files key only if it is one plain path component.
func checkFileName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("%q is not a file name", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("a file name may not hold '/' or NUL")
	}
	return nil
}

// IsShellName reports whether name is a POSIX shell variable name.
func IsShellName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// ShellQuote quotes s for POSIX shells (bash, dash, zsh, ...): the result,
// read by the shell, is exactly s, byte for byte, and nothing in it is
// expanded or executed. Every byte but NUL round-trips: the value goes in
// single quotes, and each single quote in it ends the quoting, is written
// escaped, and quoting starts again:
//
//	it's -> 'it'\''s'
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ExpiresAtVar is the variable env and dotenv export when a snapshot holds
// credentials that expire: the RFC 3339 time of the earliest expiry.
const ExpiresAtVar = "ESCFS_EXPIRES_AT"

// exportExpiry appends ESCFS_EXPIRES_AT to the env and dotenv renderings of
// a snapshot that expires. The environment's own variable of that name, if
// any, is left as it is and this line comes after it, so the real expiry
// wins when sourced.
func exportExpiry(snap *Snapshot) {
	if snap.ExpiresAt.IsZero() {
		return
	}
	at := snap.ExpiresAt.UTC().Format(time.RFC3339)
	snap.Env = fmt.Appendf(snap.Env[:len(snap.Env):len(snap.Env)], "export %s=%s\n", ExpiresAtVar, ShellQuote(at))
	snap.Dotenv = fmt.Appendf(snap.Dotenv[:len(snap.Dotenv):len(snap.Dotenv)], "%s=%s\n", ExpiresAtVar, DotenvQuote(at))
}
