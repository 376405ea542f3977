package eval

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in      string
		want    Name
		short   string
		wantErr string // substring of the error; "" means success
	}{
		{in: "prod", want: Name{"default", "prod"}, short: "prod"},
		{in: "default/prod", want: Name{"default", "prod"}, short: "prod"},
		{in: "demos/aws-access", want: Name{"demos", "aws-access"}, short: "demos/aws-access"},
		{in: "My_Proj.1/env-2.b", want: Name{"My_Proj.1", "env-2.b"}, short: "My_Proj.1/env-2.b"},
		{in: "a.b", want: Name{"default", "a.b"}, short: "a.b"},
		{in: "", wantErr: "empty name"},
		{in: "/prod", wantErr: "project: empty name"},
		{in: "proj/", wantErr: "empty name"},
		{in: "..", wantErr: `".." is not allowed`},
		{in: ".", wantErr: `"." is not allowed`},
		{in: "../prod", wantErr: `project: ".." is not allowed`},
		{in: "proj/..", wantErr: `".." is not allowed`},
		{in: "a/b/c", wantErr: `character '/'`},
		{in: "bad name", wantErr: `character ' '`},
		{in: "tab\tname", wantErr: `character '\t'`},
		{in: "ünïcode", wantErr: `character 'ü'`},
		{in: "prod@1", wantErr: "versions (@)"},
		{in: "proj/prod@latest", wantErr: "versions (@)"},
		{in: "prod:1", wantErr: `character ':'`},
		{in: "nul\x00", wantErr: `character '\x00'`},
		{in: strings.Repeat("e", 255), want: Name{"default", strings.Repeat("e", 255)}, short: strings.Repeat("e", 255)},
		{in: strings.Repeat("e", 256), wantErr: "256 bytes long, over the 255 a file name may have"},
		{in: strings.Repeat("p", 5000) + "/prod", wantErr: "project: 5000 bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseName(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseName(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseName(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "invalid environment name") {
					t.Errorf("ParseName(%q) error = %q does not say it is an invalid environment name", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseName(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.Short() != tt.short {
				t.Errorf("ParseName(%q).Short() = %q, want %q", tt.in, got.Short(), tt.short)
			}
			if got.String() != tt.want.Project+"/"+tt.want.Env {
				t.Errorf("ParseName(%q).String() = %q", tt.in, got.String())
			}
			// The canonical and short forms parse back to the same name.
			for _, s := range []string{got.String(), got.Short()} {
				again, err := ParseName(s)
				if err != nil || again != got {
					t.Errorf("ParseName(%q) = %+v, %v; want %+v", s, again, err, got)
				}
			}
		})
	}
}

func TestIsShellName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"A", true}, {"_", true}, {"a_b9", true}, {"_9", true}, {"PATH", true},
		{"", false}, {"9A", false}, {"a-b", false}, {"a.b", false}, {"a b", false},
		{"É", false}, {"a=b", false}, {"$A", false},
	}
	for _, tt := range tests {
		if got := IsShellName(tt.name); got != tt.want {
			t.Errorf("IsShellName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
