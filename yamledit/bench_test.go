package yamledit

import (
	"fmt"
	"strings"
	"testing"
)

// bigDefinition returns a definition with n plaintext secrets among other
// values.
func bigDefinition(n int) []byte {
	var b strings.Builder
	b.WriteString("# big\nvalues:\n")
	for i := range n {
		fmt.Fprintf(&b, "  # entry %d\n  e%d:\n    host: h%d.example.com\n    password:\n      fn::secret: pw-%d\n    tags: [a, b, {c: d}]\n", i, i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkEncrypt: encrypting every secret of a definition with 1000 of
// them, one Apply.
func BenchmarkEncrypt(b *testing.B) {
	src := bigDefinition(1000)
	for b.Loop() {
		if _, err := Encrypt(src, fakeEncrypt); err != nil {
			b.Fatal(err)
		}
	}
}
