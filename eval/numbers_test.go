package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// numbersYAML holds one number per line the test names; base.yaml is imported.
const numbersYAML = `imports: [base]
values:
  big: 9007199254740993
  environmentVariables:
    ACCOUNT: 012345678901
    RATIO: 1.10
    BIG: ${big}
    PORT: 8080
    HEX: 0x1F
    PLUS: +12
    EXP: 1e3
    NEG: -0
    QUOTED: "012345678901"
    INTERP: id-${big}
    HUGE: 18446744073709551616
    UINT: 12345678901234567890
    NEGBIG: -9007199254740993
    SECRET: {fn::secret: "511"}
    SHADOW: not a number here
    JSON: {fn::toJSON: {n: 2.50}}
    PIN: 0777
  files:
    NUM_FILE: 1.50
`

const numbersBaseYAML = `values:
  environmentVariables:
    FROM_BASE: 1.0
    SHADOW: 7.70
`

// TestNumberRenderings: every rendering shows the evaluator's number text,
// the same in Vars, env, dotenv and values.json (as esc does), and a warning
// at the literal says when that text differs from the definition's.
func TestNumberRenderings(t *testing.T) {
	dir := writeTree(t, map[string]string{"n.yaml": numbersYAML, "base.yaml": numbersBaseYAML})
	snap, err := evaluate(t, testEvaluator(), dir, "n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value string
		warnAt      string // FILE:LINE:COL of the literal's warning, "" for none
		warn        string // part of the warning
	}{
		{"ACCOUNT", "1.2345678901e+10", "n.yaml:5:14", "YAML reads 012345678901 as the number 1.2345678901e+10, which env, dotenv and values.json show; quote it to keep 012345678901"},
		{"RATIO", "1.1", "n.yaml:6:12", "quote it to keep 1.10"},
		{"BIG", "9007199254740993", "n.yaml:3:8", "9007199254740993 is larger than 2^53: env, dotenv and values.json hold it exactly, but readers of values.json that parse numbers as doubles (JavaScript, jq 1.6) see 9007199254740992"},
		{"PORT", "8080", "", ""},
		{"HEX", "31", "n.yaml:9:10", "quote it to keep 0x1F"},
		{"PLUS", "12", "n.yaml:10:11", "quote it to keep +12"},
		{"EXP", "1000", "n.yaml:11:10", "quote it to keep 1e3"},
		{"NEG", "0", "n.yaml:12:10", "quote it to keep -0"},
		{"QUOTED", "012345678901", "", ""},
		{"INTERP", "id-9007199254740993", "n.yaml:3:8", ""},
		{"HUGE", "1.8446744073709552e+19", "n.yaml:15:11", "quote it to keep 18446744073709551616"},
		{"UINT", "12345678901234567890", "n.yaml:16:11", "see 12345678901234567000"},
		{"NEGBIG", "-9007199254740993", "n.yaml:17:13", "see -9007199254740992"},
		{"SECRET", "511", "", ""},
		{"SHADOW", "not a number here", "", ""},
		{"JSON", `{"n":2.5}`, "n.yaml:20:28", "quote it to keep 2.50"},
		{"FROM_BASE", "1", "base.yaml:3:16", "quote it to keep 1.0"},
		// 0777 is octal to YAML; its value equals a secret, so the warning
		// quotes neither.
		{"PIN", "511", "n.yaml:21:10", "YAML reads a secret number as a number whose text differs from what is written"},
	}
	vars := map[string]string{}
	for _, v := range snap.Vars {
		vars[v.Name] = v.Value
	}
	var values struct {
		EnvironmentVariables map[string]json.RawMessage `json:"environmentVariables"`
	}
	if err := json.Unmarshal(snap.ValuesJSON, &values); err != nil {
		t.Fatal(err)
	}
	located := map[string]string{} // FILE:LINE:COL -> message
	for _, d := range snap.Diagnostics {
		located[fmt.Sprintf("%s:%d:%d", filepath.Base(d.File), d.Line, d.Column)] = d.Message
		if d.Severity != SeverityWarning {
			t.Errorf("%s is a %s, want a warning", d, d.Severity)
		}
	}
	for _, tt := range tests {
		if vars[tt.name] != tt.value {
			t.Errorf("%s = %q, want %q", tt.name, vars[tt.name], tt.value)
		}
		if line := "export " + tt.name + "=" + ShellQuote(tt.value) + "\n"; !strings.Contains(string(snap.Env), line) {
			t.Errorf("env has no line %q", line)
		}
		if line := tt.name + "=" + DotenvQuote(tt.value) + "\n"; !strings.Contains(string(snap.Dotenv), line) {
			t.Errorf("dotenv has no line %q", line)
		}
		// values.json holds a number's text exactly as the variable does.
		raw := string(values.EnvironmentVariables[tt.name])
		if raw != tt.value && raw != "" && raw[0] != '"' {
			t.Errorf("values.json %s = %s, env %s", tt.name, raw, tt.value)
		}
		if tt.warnAt == "" {
			continue
		}
		msg, ok := located[tt.warnAt]
		switch {
		case !ok:
			t.Errorf("%s: no warning at %s in:\n%s", tt.name, tt.warnAt, diagLines(snap.Diagnostics))
		case !strings.Contains(msg, tt.warn):
			t.Errorf("%s: warning at %s = %q, want it to say %q", tt.name, tt.warnAt, msg, tt.warn)
		}
	}
	if f, ok := snap.File("NUM_FILE"); !ok || string(f.Content) != "1.5" {
		t.Errorf("files NUM_FILE = %q, want 1.5", f.Content)
	}
	// The files entry warns, 8080 and quoted text warn nothing, the secret's
	// digits appear nowhere, and a key redefined by the importer hides the
	// imported literal (base.yaml:4 SHADOW: 7.70).
	want := map[string]bool{"n.yaml:23:15": true, "base.yaml:4:13": false, "n.yaml:8:11": false, "n.yaml:13:13": false}
	for at, present := range want {
		if _, ok := located[at]; ok != present {
			t.Errorf("warning at %s: %v, want %v:\n%s", at, ok, present, diagLines(snap.Diagnostics))
		}
	}
	for _, d := range snap.Diagnostics {
		if strings.Contains(d.Message, "0777") || strings.Contains(d.Message, "511") {
			t.Errorf("a diagnostic quotes the secret number: %s", d)
		}
	}
	if n := len(snap.Diagnostics); n != 14 {
		t.Errorf("%d diagnostics, want 14:\n%s", n, diagLines(snap.Diagnostics))
	}
}

// TestNumberWithoutJSONForm: .inf and .nan are numbers to the evaluator but
// not to JSON. Rendering them must neither crash nor drop them silently: the
// environment fails with an error at the literal.
func TestNumberWithoutJSONForm(t *testing.T) {
	for _, lit := range []string{".inf", "-.Inf", ".nan"} {
		t.Run(lit, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"x.yaml": "values:\n  environmentVariables:\n    X: " + lit + "\n    Y: fine\n"})
			snap, err := evaluate(t, testEvaluator(), dir, "x")
			var derr *DiagnosticsError
			if !errors.As(err, &derr) {
				t.Fatalf("err = %v, want diagnostics", err)
			}
			if snap == nil || len(snap.Diagnostics) != 1 {
				t.Fatalf("snapshot %+v, want one diagnostic", snap)
			}
			d := snap.Diagnostics[0]
			if got := fmt.Sprintf("%s:%d:%d", filepath.Base(d.File), d.Line, d.Column); got != "x.yaml:3:8" || d.Severity != SeverityError ||
				!strings.Contains(d.Message, "YAML reads "+lit+" as the number") || !strings.Contains(d.Message, "quote it to keep "+lit) {
				t.Errorf("diagnostic %s (%s), want an error at x.yaml:3:8 saying to quote %s", d, d.Severity, lit)
			}
			if snap.Env != nil || snap.Dotenv != nil || snap.ValuesJSON != nil || snap.Vars != nil {
				t.Error("a snapshot with errors holds renderings")
			}
		})
	}
}

// TestNumberMessage covers the messages without an evaluation.
func TestNumberMessage(t *testing.T) {
	tests := []struct {
		text, number string
		secret       bool
		want         string // part of the message; "" for none
		sev          Severity
	}{
		{"8080", "8080", false, "", ""},
		{"9007199254740992", "9007199254740992", false, "", ""}, // 2^53 is a double
		{"9007199254740993", "9007199254740993", false, "see 9007199254740992", SeverityWarning},
		{"1.10", "1.1", false, "quote it to keep 1.10", SeverityWarning},
		{"1.10", "1.1", true, "a secret number", SeverityWarning},
		{".inf", "+Inf", false, "which JSON cannot hold", SeverityError},
		{".nan", "NaN", true, "a secret number has no JSON form", SeverityError},
	}
	for _, tt := range tests {
		msg, sev := numberMessage(tt.text, json.Number(tt.number), tt.secret)
		if (tt.want == "") != (msg == "") || !strings.Contains(msg, tt.want) || sev != tt.sev {
			t.Errorf("numberMessage(%q, %q, %v) = %q, %q; want %q, %q", tt.text, tt.number, tt.secret, msg, sev, tt.want, tt.sev)
		}
		if tt.secret && (strings.Contains(msg, tt.text) || strings.Contains(msg, tt.number)) {
			t.Errorf("numberMessage quotes the secret: %q", msg)
		}
	}
}
