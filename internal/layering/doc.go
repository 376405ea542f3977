// Package layering holds the test that keeps the module's layout honest:
// every import points down the layers (internal/ at the bottom, then
// providers/ and yamledit/, eval/, the packages built on eval, rewrite/,
// and cmd/ on top), and no package holds more than a quarter of the code.
// Run it with -v for the table of sizes.
package layering
