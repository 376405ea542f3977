package eval

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultProject is the project of an environment named without one: as in
// Pulumi ESC, "prod" and "default/prod" name the same environment.
const DefaultProject = "default"

// Name identifies an environment as project and environment name.
type Name struct {
	Project string // the project; DefaultProject for a top-level definition
	Env     string // the environment within the project
}

// String returns the canonical "project/env" form of the name.
func (n Name) String() string { return n.Project + "/" + n.Env }

// Short returns the name as it is laid out on disk and in the mount: "prod"
// for an environment of the default project, "demos/aws-access" otherwise.
func (n Name) Short() string {
	if n.Project == DefaultProject {
		return n.Env
	}
	return n.String()
}

// MaxNamePart is the longest project or environment name, in bytes: the
// longest file name Linux lists (NAME_MAX).
const MaxNamePart = 255

// ParseName parses "env" or "project/env" into a Name. Both parts must be
// non-empty and consist of letters, digits, '-', '_' and '.', and neither may
// be "." or "..".
func ParseName(s string) (Name, error) {
	shown := s
	if len(shown) > 64 {
		shown = strings.ToValidUTF8(shown[:60], "") + "..."
	}
	project, env, found := strings.Cut(s, "/")
	if !found {
		project, env = DefaultProject, s
	}
	if strings.Contains(env, "@") {
		return Name{}, fmt.Errorf("invalid environment name %q: versions (@) are not supported by escfs", shown)
	}
	if err := checkNamePart(project); err != nil {
		return Name{}, fmt.Errorf("invalid environment name %q: project: %w", shown, err)
	}
	if err := checkNamePart(env); err != nil {
		return Name{}, fmt.Errorf("invalid environment name %q: %w", shown, err)
	}
	return Name{Project: project, Env: env}, nil
}

// checkNamePart validates one component of an environment name.
func checkNamePart(s string) error {
	switch s {
	case "":
		return errors.New("empty name")
	case ".", "..":
		return fmt.Errorf("%q is not allowed", s)
	}
	if len(s) > MaxNamePart {
		// A longer name cannot be a directory entry: the kernel fails the
		// whole listing (EIO) at it.
		return fmt.Errorf("%d bytes long, over the %d a file name may have", len(s), MaxNamePart)
	}
	for _, r := range s {
		if !isNameRune(r) {
			return fmt.Errorf("character %q is not allowed (use letters, digits, '-', '_' and '.')", r)
		}
	}
	return nil
}

func isNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}
