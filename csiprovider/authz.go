package csiprovider

import (
	"bytes"
	"fmt"
	"os"
	"path"

	"gopkg.in/yaml.v3"
)

// Authz says which pods may mount which environments: a pod's namespace and
// service account must match a rule that names the environment. Nothing
// matches by default: a provider without rules refuses every Mount.
//
//	allow:
//	  - namespace: prod
//	    serviceAccount: web          # "*" for any in the namespace
//	    environments: [prod/web, shared/*]   # path.Match patterns
type Authz struct {
	Allow []Rule `yaml:"allow"`
}

// Rule allows one namespace's service account (or all of them) to mount
// the environments its patterns match.
type Rule struct {
	Namespace      string   `yaml:"namespace"`
	ServiceAccount string   `yaml:"serviceAccount"`
	Environments   []string `yaml:"environments"`
}

// LoadAuthz reads the rules from a YAML file; errors name the file and line.
func LoadAuthz(file string) (*Authz, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("authorization rules: %w", err)
	}
	var a Authz
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("authorization rules %s: %w", file, err)
	}
	for i, r := range a.Allow {
		if r.Namespace == "" || r.ServiceAccount == "" || len(r.Environments) == 0 {
			return nil, fmt.Errorf("authorization rules %s: allow[%d] needs namespace, serviceAccount and environments", file, i)
		}
		for _, p := range append(r.Environments, r.Namespace, r.ServiceAccount) {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("authorization rules %s: allow[%d]: pattern %q: %w", file, i, p, err)
			}
		}
	}
	return &a, nil
}

// Allows reports whether a pod of namespace running as serviceAccount may
// mount env (canonical: "project/env").
func (a *Authz) Allows(namespace, serviceAccount, env string) bool {
	if a == nil {
		return false
	}
	for _, r := range a.Allow {
		if !match(r.Namespace, namespace) || !match(r.ServiceAccount, serviceAccount) {
			continue
		}
		for _, p := range r.Environments {
			if match(p, env) {
				return true
			}
		}
	}
	return false
}

func match(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}
