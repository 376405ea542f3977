package eval

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/escfs/escfs/internal/redact"
	"github.com/hashicorp/hcl/v2"
	"github.com/pulumi/esc/syntax"
)

// Severity says whether a diagnostic stops an environment from rendering.
type Severity string

// The severities of diagnostics.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic is one problem found while loading or evaluating an environment,
// located in a definition file.
type Diagnostic struct {
	File     string   `json:"file"`             // path of the definition file
	Line     int      `json:"line,omitempty"`   // 1-based line, 0 if unknown
	Column   int      `json:"column,omitempty"` // 1-based column, 0 if unknown
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// String formats the diagnostic as FILE:LINE:COL: message, the form editors
// and compilers use; warnings say so before the message.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(quotePath(d.File))
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, max(d.Column, 1))
	}
	b.WriteString(": ")
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Message)
	return redact.String(b.String())
}

// quotePath returns a path as is, or Go-quoted if it holds a byte that
// would let it forge or break a line of output (a newline, any control
// character, invalid UTF-8).
func quotePath(p string) string {
	if !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(p)
	}
	return p
}

// Diagnostics is a list of diagnostics.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Err returns nil if there are no errors, else an error listing all errors
// one per line.
func (ds Diagnostics) Err() error {
	var lines []string
	for _, d := range ds {
		if d.Severity == SeverityError {
			lines = append(lines, d.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return &DiagnosticsError{Diagnostics: ds, msg: strings.Join(lines, "\n")}
}

// DiagnosticsError is the error of an environment whose evaluation failed.
type DiagnosticsError struct {
	Diagnostics Diagnostics // every diagnostic, warnings included
	msg         string
}

func (e *DiagnosticsError) Error() string { return e.msg }

// fromSyntax converts the evaluator's diagnostics. fileOf maps the file name
// the evaluator knows (an environment name for imports) to a path on disk.
func fromSyntax(diags syntax.Diagnostics, fileOf func(string) string) Diagnostics {
	out := make(Diagnostics, 0, len(diags))
	for _, d := range diags {
		if d == nil {
			continue
		}
		dd := Diagnostic{Severity: SeverityError, Message: d.Summary}
		if d.Severity == hcl.DiagWarning {
			dd.Severity = SeverityWarning
		}
		if d.Detail != "" && d.Detail != d.Summary {
			dd.Message += ": " + d.Detail
		}
		if d.Subject != nil {
			dd.File = fileOf(d.Subject.Filename)
			dd.Line, dd.Column = d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, dd)
	}
	return out
}
