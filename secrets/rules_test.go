package secrets

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	testAge1 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	testAge2 = "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg"
	testARN  = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

func writeRules(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, RulesFile), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadRules(t *testing.T) {
	src := fmt.Sprintf(`# team keys
secrets:
  - environments: "prod/*"
    age: [%s]
    awskms:
      - %s
  - environments: "*"
    age:
      - %s
      - %s
`, testAge1, testARN, testAge1, testAge2)
	dir := writeRules(t, src)
	rules, err := LoadRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Environments: "prod/*", Age: []string{testAge1}, AWSKMS: []string{testARN}, Line: 3, Col: 5},
		{Environments: "*", Age: []string{testAge1, testAge2}, Line: 7, Col: 5},
	}
	if rules.File != filepath.Join(dir, RulesFile) || len(rules.Rules) != len(want) {
		t.Fatalf("got %+v", rules)
	}
	for i, r := range rules.Rules {
		if r.Environments != want[i].Environments || !slices.Equal(r.Age, want[i].Age) || !slices.Equal(r.AWSKMS, want[i].AWSKMS) || r.Line != want[i].Line || r.Col != want[i].Col {
			t.Errorf("rule %d = %+v, want %+v", i, r, want[i])
		}
	}
	if got := rules.Rules[0].Recipients(); !slices.Equal(got, []string{testAge1, testARN}) {
		t.Errorf("Recipients() = %v", got)
	}

	// A missing or empty file is no rules.
	for _, d := range []string{t.TempDir(), writeRules(t, ""), writeRules(t, "# nothing yet\n")} {
		r, err := LoadRules(d)
		if err != nil || len(r.Rules) != 0 {
			t.Errorf("%s: %+v, %v; want no rules", d, r, err)
		}
		if _, ok := r.For("default", "app"); ok {
			t.Error("a rule matched with no rules")
		}
	}
}

func TestLoadRulesErrors(t *testing.T) {
	tests := []struct {
		name, src string
		at        string // LINE:COL
		want      string
	}{
		{"bad YAML", "secrets:\n  - environments: [\n", "2:3", "yaml:"},
		{"a tab", "secrets:\n\t- environments: x\n", "2:1", "yaml:"}, // the tab is the character that cannot start a token
		{"not a mapping", "- a\n", "1:1", "expected a mapping"},
		{"unknown top-level key", "secret:\n  - environments: x\n", "1:1", `unknown key "secret"`},
		{"secrets not a list", "secrets: x\n", "1:10", "expected a list of rules"},
		{"rule not a mapping", "secrets:\n  - x\n", "2:5", "a rule is a mapping"},
		{"unknown rule key", "secrets:\n  - environments: x\n    pgp: [a]\n", "3:5", `unknown key "pgp"`},
		{"no environments", "secrets:\n  - age: [" + testAge1 + "]\n", "2:5", "rule without environments"},
		{"no recipients", "secrets:\n  - environments: x\n", "2:5", "without recipients"},
		{"empty recipients", "secrets:\n  - environments: x\n    age: []\n", "2:5", "without recipients"},
		{"environments not a string", "secrets:\n  - environments: [a]\n    age: [" + testAge1 + "]\n", "2:19", "expected a string"},
		{"bad pattern", "secrets:\n  - environments: \"prod/[a-\"\n    age: [" + testAge1 + "]\n", "2:19", "environments:"},
		{"empty pattern", "secrets:\n  - environments: \"\"\n    age: [" + testAge1 + "]\n", "2:19", "empty pattern"},
		{"bad age recipient", "secrets:\n  - environments: x\n    age:\n      - " + testAge1 + "\n      - age1nope\n", "5:9", "age recipient"},
		{"ARN under age", "secrets:\n  - environments: x\n    age: [" + testARN + "]\n", "3:11", "belongs under awskms"},
		{"age under awskms", "secrets:\n  - environments: x\n    awskms: [" + testAge1 + "]\n", "3:14", "belongs under age"},
		{"bad ARN", "secrets:\n  - environments: x\n    awskms: [\"arn:aws:kms:eu-west-1:1:key/x\"]\n", "3:14", "not an AWS KMS key ARN"},
		{"age not a list", "secrets:\n  - environments: x\n    age: " + testAge1 + "\n", "3:10", "expected a list"},
		{"secrets twice", "secrets: []\nsecrets: []\n", "2:1", "secrets given twice"},
		{"a rule key twice", "secrets:\n  - environments: x\n    age: [" + testAge1 + "]\n    age: [" + testAge2 + "]\n", "4:5", "age given twice"},
		{"a secret key", "secrets:\n  - environments: x\n    age: [AGE-SECRET-KEY-1QQQQ]\n", "3:11", "no recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeRules(t, tt.src)
			_, err := LoadRules(dir)
			prefix := filepath.Join(dir, RulesFile) + ":" + tt.at + ": "
			if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q...%q", err, prefix, tt.want)
			}
			if strings.Contains(err.Error(), "QQQQ") {
				t.Fatalf("error repeats a secret key: %v", err)
			}
		})
	}
}

func TestRulesFor(t *testing.T) {
	rule := func(p string) Rule { return Rule{Environments: p, Age: []string{p}} }
	rules := &Rules{Rules: []Rule{
		rule("prod/*"),
		rule("app"),
		rule("team-?/db"),
		rule("[sd]*/x[0-9]"),
		rule(`lit\*`),
		rule("*"),
	}}
	tests := []struct {
		project, env string
		want         string // the pattern of the rule that applies
	}{
		{"prod", "db", "prod/*"},
		{"prod", "a/b/c", "prod/*"}, // * crosses /
		{"default", "app", "app"},   // the bare name in the default project
		{"other", "app", "*"},       // but not in another project
		{"team-a", "db", "team-?/db"},
		{"team-ab", "db", "*"},
		{"staging", "x7", "[sd]*/x[0-9]"},
		{"dev", "xy", "*"},
		{"default", "lit*", `lit\*`},
		{"default", "litx", "*"},
		{"production", "db", "*"}, // prod/* is not a prefix match
	}
	for _, tt := range tests {
		got, ok := rules.For(tt.project, tt.env)
		if !ok || got.Environments != tt.want {
			t.Errorf("For(%q, %q) = %q, %v; want %q", tt.project, tt.env, got.Environments, ok, tt.want)
		}
	}
	only := &Rules{Rules: []Rule{rule("prod/*")}}
	if got, ok := only.For("staging", "db"); ok {
		t.Errorf("For(staging, db) = %+v, want no rule", got)
	}
	var none *Rules
	if _, ok := none.For("a", "b"); ok {
		t.Error("a nil Rules matched")
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
		wantErr       bool
	}{
		{"*", "", true, false},
		{"*", "a/b/c", true, false},
		{"a*b", "a/x/b", true, false},
		{"a*b", "a/x/bc", false, false},
		{"*a*a*a", "aaaa", true, false},
		{"?", "/", true, false},
		{"?", "é", true, false}, // one character, two bytes
		{"??", "é", false, false},
		{"[é]", "é", true, false},
		{"[^a]", "b", true, false},
		{"[!a]", "a", false, false},
		{"[a-c]x", "bx", true, false},
		{`[\]]`, "]", true, false},
		{`\?`, "?", true, false},
		{`\?`, "a", false, false},
		{"prod", "prod/db", false, false},
		{"", "", false, true},
		{"[", "a", false, true},
		{"[]", "a", false, true},
		{"[a-", "a", false, true},
		{"[c-a]", "b", false, true},
		{`a\`, "a", false, true},
		{"ok*[", "okx", false, true}, // malformed after a star: still an error
	}
	for _, tt := range tests {
		got, err := matchGlob(tt.pattern, tt.name)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("matchGlob(%q, %q) = %v, %v; want %v, error %v", tt.pattern, tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzRulesPattern checks matchGlob against an independent implementation:
// the pattern translated to a regular expression.
func FuzzRulesPattern(f *testing.F) {
	for _, s := range []struct{ p, n string }{
		{"prod/*", "prod/db"}, {"*", "x"}, {"a?c", "a/c"}, {"[a-z]*", "q/r"},
		{`\*x`, "*x"}, {"[^/]*", "ab"}, {"*a*b*c", "aabbcc"}, {"[é-ü]", "ö"},
	} {
		f.Add(s.p, s.n)
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got, err := matchGlob(pattern, name)
		re, reErr := globRegexp(pattern)
		if (err == nil) != (reErr == nil) {
			t.Fatalf("pattern %q: matchGlob error %v, translation error %v", pattern, err, reErr)
		}
		if err != nil || !utf8.ValidString(name) {
			return
		}
		if want := re.MatchString(name); got != want {
			t.Fatalf("matchGlob(%q, %q) = %v, regexp %s says %v", pattern, name, got, re, want)
		}
	})
}

// globRegexp translates a pattern to a regular expression, for
// FuzzRulesPattern only.
func globRegexp(pattern string) (*regexp.Regexp, error) {
	if pattern == "" || !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("bad")
	}
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+1 == len(rs) {
				return nil, fmt.Errorf("bad")
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(rs[i])))
		case '[':
			i++
			b.WriteString("[")
			if i < len(rs) && (rs[i] == '^' || rs[i] == '!') {
				b.WriteString("^")
				i++
			}
			char := func() (rune, error) {
				if i >= len(rs) || rs[i] == ']' || rs[i] == '-' {
					return 0, fmt.Errorf("bad")
				}
				if rs[i] == '\\' {
					i++
					if i >= len(rs) {
						return 0, fmt.Errorf("bad")
					}
				}
				r := rs[i]
				i++
				return r, nil
			}
			for n := 0; ; n++ {
				if i < len(rs) && rs[i] == ']' && n > 0 {
					break
				}
				lo, err := char()
				if err != nil {
					return nil, err
				}
				hi := lo
				if i < len(rs) && rs[i] == '-' {
					i++
					if hi, err = char(); err != nil {
						return nil, err
					}
					if hi < lo {
						return nil, fmt.Errorf("bad")
					}
				}
				fmt.Fprintf(&b, `\x{%x}-\x{%x}`, lo, hi)
			}
			b.WriteString("]")
		default:
			b.WriteString(regexp.QuoteMeta(string(rs[i])))
		}
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}
