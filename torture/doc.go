// Package torture is the torture suite of escfs: hostile definitions,
// deployment layouts, edit races, lifecycle signals, secret probes and the
// attacks of a colleague who can write definitions but holds no key (moved
// ciphertexts, a planted data key, a recipient added to the rules, forged
// KMS stanzas, plaintext left by editors, credentials sent to a URL a
// definition names or a redirect, echoed tokens, unbounded Cloud answers,
// over-long names) against the real escfs binary, each case counted in a
// table printed at the end. The tests carry the build tag torture; run them
// with `make torture`.
package torture
