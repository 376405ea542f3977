package proppath

import "testing"

// TestPath: property paths parse as esc's do and print back the same.
func TestPath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
	}{
		{"db.password", Path{"db", "password"}},
		{"list[0]", Path{"list", 0}},
		{`a["x.y"][2].b`, Path{"a", "x.y", 2, "b"}},
		{`["q\"\\"]`, Path{`q"\`}},
		{`[""]`, Path{""}},
		{"fn::open::vault.token", Path{"fn::open::vault", "token"}},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("Parse(%q) = %v, %v", tc.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Parse(%q) = %v", tc.in, got)
			}
		}
		again, err := Parse(got.String())
		if err != nil || again.String() != got.String() {
			t.Errorf("%q prints as %q", tc.in, got.String())
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a[", "a[-1]", "a[+1]", "a]b", `a["b"`} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
