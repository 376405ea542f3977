package csiprovider

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The attributes the Secrets Store CSI Driver adds to a SecretProviderClass's
// parameters (pkg/secrets-store/nodeserver.go).
const (
	attrPodName        = "csi.storage.k8s.io/pod.name"
	attrPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	attrServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	attrTokens         = "csi.storage.k8s.io/serviceAccount.tokens"
)

// DefaultFilesDir is where a pod sees the volume's files/ entries unless
// the class says otherwise (filesDir): the variables of files entries
// point into it.
const DefaultFilesDir = "/var/run/secrets/escfs/files"

// Object is one file a SecretProviderClass asks for: a rendering, a files
// entry or the value at a property path, written at Path with Mode.
type Object struct {
	Render   string `yaml:"render"`   // env, dotenv or values.json
	File     string `yaml:"file"`     // a files entry's name
	Property string `yaml:"property"` // a property path, such as aws.creds.accessKeyId
	Path     string `yaml:"path"`     // where in the volume; default the rendering's or entry's name
	Mode     string `yaml:"mode"`     // octal, such as "0400"; default the request's permission
	mode     int32
}

// request is a parsed MountRequest.
type request struct {
	env            string
	namespace      string
	serviceAccount string
	pod            string
	tokens         map[string]string // audience -> token
	objects        []Object          // nil: everything
	filesDir       string
	mode           int32
}

// renderings are the renderings a class may ask for.
var renderings = []string{"env", "dotenv", "values.json"}

// parseRequest reads the attributes (the class's parameters and the
// driver's pod attributes, as JSON) and the default permission.
func parseRequest(attributes, permission string) (*request, error) {
	var attrs map[string]string
	if err := json.Unmarshal([]byte(attributes), &attrs); err != nil {
		return nil, fmt.Errorf("attributes are not a JSON object of strings: %w", err)
	}
	r := &request{
		env:            attrs["environment"],
		namespace:      attrs[attrPodNamespace],
		serviceAccount: attrs[attrServiceAccount],
		pod:            attrs[attrPodName],
		filesDir:       DefaultFilesDir,
		mode:           0o644,
	}
	if r.env == "" {
		return nil, errors.New(`the SecretProviderClass names no environment (parameters.environment, such as "prod/app")`)
	}
	if r.namespace == "" || r.serviceAccount == "" {
		return nil, errors.New("the driver sent no pod namespace or service account (csi.storage.k8s.io/pod.namespace, csi.storage.k8s.io/serviceAccount.name): is podInfoOnMount set on the CSIDriver?")
	}
	if d := attrs["filesDir"]; d != "" {
		if !path.IsAbs(d) {
			return nil, fmt.Errorf("filesDir %q is not an absolute path", d)
		}
		r.filesDir = path.Clean(d)
	}
	if permission != "" {
		var p string
		if err := json.Unmarshal([]byte(permission), &p); err != nil {
			p = permission
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 || n > 0o777 {
			return nil, fmt.Errorf("permission %q is not a file mode", permission)
		}
		r.mode = int32(n)
	}
	if t := attrs[attrTokens]; t != "" {
		var tokens map[string]struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(t), &tokens); err != nil {
			return nil, errors.New("the service account tokens are not the driver's JSON")
		}
		r.tokens = map[string]string{}
		for aud, tok := range tokens {
			if tok.Token != "" {
				r.tokens[aud] = tok.Token
			}
		}
	}
	if o := attrs["objects"]; o != "" {
		objs, err := parseObjects(o, r.mode)
		if err != nil {
			return nil, err
		}
		r.objects = objs
	}
	return r, nil
}

// parseObjects reads the objects parameter: a YAML list of objects.
func parseObjects(text string, defaultMode int32) ([]Object, error) {
	var objs []Object
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&objs); err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	if len(objs) == 0 {
		return nil, errors.New("objects is empty")
	}
	seen := map[string]bool{}
	for i := range objs {
		o := &objs[i]
		kinds := 0
		for _, k := range []string{o.Render, o.File, o.Property} {
			if k != "" {
				kinds++
			}
		}
		if kinds != 1 {
			return nil, fmt.Errorf("objects[%d]: give exactly one of render, file or property", i)
		}
		if o.Render != "" && !slices.Contains(renderings, o.Render) {
			return nil, fmt.Errorf("objects[%d]: render %q is not one of %s", i, o.Render, strings.Join(renderings, ", "))
		}
		if o.Path == "" {
			switch {
			case o.Render != "":
				o.Path = o.Render
			case o.File != "":
				o.Path = "files/" + o.File
			default:
				return nil, fmt.Errorf("objects[%d]: a property needs a path", i)
			}
		}
		if err := checkPath(o.Path); err != nil {
			return nil, fmt.Errorf("objects[%d]: %w", i, err)
		}
		if seen[o.Path] {
			return nil, fmt.Errorf("objects[%d]: path %q is written twice", i, o.Path)
		}
		seen[o.Path] = true
		o.mode = defaultMode
		if o.Mode != "" {
			n, err := strconv.ParseInt(o.Mode, 8, 32)
			if err != nil || n < 0 || n > 0o777 {
				return nil, fmt.Errorf("objects[%d]: mode %q is not an octal file mode such as \"0400\"", i, o.Mode)
			}
			o.mode = int32(n)
		}
	}
	return objs, nil
}

// checkPath refuses what the driver refuses: an absolute path, or one with
// a .. element.
func checkPath(p string) error {
	if p == "" || path.IsAbs(p) || strings.HasPrefix(p, "..") || path.Clean(p) != p {
		return fmt.Errorf("path %q must be relative and clean (no leading /, no ..)", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." {
			return fmt.Errorf("path %q must be relative and clean (no leading /, no ..)", p)
		}
	}
	return nil
}
