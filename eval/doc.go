// Package eval turns environment definitions into snapshots and keeps
// them current. It is built around the official evaluator
// (github.com/pulumi/esc/eval), which it does not duplicate:
//
//   - Tree and ScanDir: the definitions of a directory, by environment
//     name; ImportsOf reads an imports list.
//   - Evaluator: one evaluation, within Limits, by a Reader who must trust
//     every file read; secrets at rest are checked by the AtRest it is
//     given (package secrets implements it) and opened by its Decrypter.
//   - Snapshot: an evaluation rendered for tools: env (shell), dotenv,
//     values.json, files, with their expiry.
//   - Source: where a Store's environments come from (DirSource here; the
//     Pulumi Cloud source in package cloud), delivering new listings.
//   - Store: one cached snapshot per environment, evaluated on demand,
//     single-flight, renewed before its credentials expire (decide is the
//     renewal decision), dropped when a definition, an import or a file a
//     provider read changes.
//
// Providers come from package providers; eval imports nothing above it.
package eval
