// Package torture is the torture suite of escfs: hostile definitions,
// deployment layouts, edit races, lifecycle signals and secret probes against
// the real escfs binary, each case counted in a table printed at the end.
// The tests carry the build tag torture; run them with `make torture`.
package torture
