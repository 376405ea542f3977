package main

import (
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/yamledit"

	"github.com/pulumi/esc"
)

// propertyPath is a parsed property path (yamledit's: the one parser
// escfs has for esc's syntax).
type propertyPath = yamledit.Path

// parsePropertyPath parses a property path as esc open takes it.
func parsePropertyPath(s string) (propertyPath, error) { return yamledit.ParsePath(s) }

// lookupPath returns the value at path in v.
func lookupPath(path propertyPath, v esc.Value) (esc.Value, bool) { return eval.Lookup(path, v) }
