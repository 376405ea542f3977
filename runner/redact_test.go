package runner

import (
	"bytes"
	"strings"
	"testing"
)

// writeChunks writes the chunks of in cut at the given positions to a new
// Redactor, closes it and returns what it wrote.
func writeChunks(t *testing.T, secrets []string, in string, cuts []int) string {
	t.Helper()
	var out bytes.Buffer
	r := NewRedactor(&out, secrets)
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if n, err := r.Write([]byte(in[prev:c])); err != nil || n != c-prev {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, c-prev)
		}
		prev = c
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestRedactorEverySplit(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"none", []string{"hunter2"}, "nothing to see\n", "nothing to see\n"},
		{"one", []string{"hunter2"}, "pw=hunter2\n", "pw=[secret]\n"},
		{"twice adjacent", []string{"hunter2"}, "hunter2hunter2", "[secret][secret]"},
		{"at end without newline", []string{"hunter2"}, "pw=hunter2", "pw=[secret]"},
		{"prefix only", []string{"hunter2"}, "pw=hunter", "pw=hunter"},
		{"prefix then other", []string{"hunter2"}, "huntehunter2x", "hunte[secret]x"},
		{"longest wins", []string{"abc", "abcdef"}, "xabcdefx", "x[secret]x"},
		{"longest wins over inner", []string{"cd", "abcdef", "cde"}, "abcdef", "[secret]"},
		{"leftmost wins", []string{"bcdefg", "abc"}, "abcdefg", "[secret]defg"},
		{"overlap self", []string{"aab"}, "aaab", "a[secret]"},
		{"multiline", []string{"line1\nline2"}, "x line1\nline2 y\n", "x [secret] y\n"},
		{"short ignored", []string{"ab", "", "abc"}, "ab abc", "ab [secret]"},
		{"no secrets", nil, "abc", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeChunks(t, tt.secrets, tt.in, nil); got != tt.want {
				t.Fatalf("one write: got %q, want %q", got, tt.want)
			}
			for i := 0; i <= len(tt.in); i++ {
				for j := i; j <= len(tt.in); j++ {
					if got := writeChunks(t, tt.secrets, tt.in, []int{i, j}); got != tt.want {
						t.Fatalf("writes cut at %d and %d: got %q, want %q", i, j, got, tt.want)
					}
				}
			}
			cuts := make([]int, len(tt.in))
			for i := range cuts {
				cuts[i] = i
			}
			if got := writeChunks(t, tt.secrets, tt.in, cuts); got != tt.want {
				t.Fatalf("byte by byte: got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRedactorHoldsBackOnlyPossibleSecrets checks that output that cannot
// become a secret passes at once, and a possible start of one waits.
func TestRedactorHoldsBackOnlyPossibleSecrets(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, []string{"s3cret"})
	write := func(s string) {
		t.Helper()
		if _, err := r.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("Password: ")
	if got := out.String(); got != "Password: " {
		t.Fatalf("after a prompt: got %q, want it passed on at once", got)
	}
	write("s3c")
	if got := out.String(); got != "Password: " {
		t.Fatalf("after a secret's start: got %q, want it held back", got)
	}
	write("ret and s3")
	if got := out.String(); got != "Password: [secret] and " {
		t.Fatalf("after the secret's end: got %q", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "Password: [secret] and s3" {
		t.Fatalf("after Close: got %q", got)
	}
}

// TestRedactorLongStream redacts many secrets in a stream written in chunks
// of every size from 1 to 17 bytes.
func TestRedactorLongStream(t *testing.T) {
	secrets := []string{"alpha-secret", "beta", "gamma-gamma-gamma"}
	var in, want strings.Builder
	for i := range 200 {
		s := secrets[i%len(secrets)]
		in.WriteString("line " + s + " end\n")
		want.WriteString("line [secret] end\n")
	}
	for size := 1; size <= 17; size++ {
		var cuts []int
		for c := size; c < in.Len(); c += size {
			cuts = append(cuts, c)
		}
		if got := writeChunks(t, secrets, in.String(), cuts); got != want.String() {
			t.Fatalf("chunks of %d: output differs; leaked secret: %v", size, strings.Contains(got, "beta") || strings.Contains(got, "alpha") || strings.Contains(got, "gamma"))
		}
	}
}
