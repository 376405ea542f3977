package pulumistacks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pulumi/esc"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"gopkg.in/yaml.v3"

	"github.com/escfs/escfs/internal/pulumiaccount"
)

// Backend is where stack state is kept: self-managed backends (file://,
// s3://, backend.go) and Pulumi Cloud (cloud.go).
type Backend interface {
	// ReadStack returns the outputs of the stack ref names ("project/stack"
	// or "organization/project/stack"), secrets decrypted and marked
	// secret. Its errors start with "stack REF: " and name where the stack
	// was looked for.
	ReadStack(ctx context.Context, ref string) (esc.Value, error)
}

// CloudURL is the backend the Pulumi CLI uses when nothing else is set.
const CloudURL = pulumiaccount.CloudURL

// BackendURL resolves the backend as the Pulumi CLI does without a project:
// the given URL if any, else pulumiaccount.DefaultBackend
// (PULUMI_BACKEND_URL, else the current login in the CLI's credentials.json,
// else Pulumi Cloud).
func BackendURL(input string) (string, error) {
	if input != "" {
		return input, nil
	}
	return pulumiaccount.DefaultBackend()
}

// OpenBackend opens the backend at url: a self-managed one, file://PATH
// (file://~ and file://~/PATH are under the home directory) or
// s3://BUCKET[/PREFIX][?region=R&endpoint=URL&s3ForcePathStyle=true&profile=P],
// or Pulumi Cloud at its API URL (https://api.pulumi.com, or any http(s)
// URL of a self-hosted one).
func OpenBackend(ctx context.Context, url string) (Backend, error) {
	scheme, _, _ := strings.Cut(url, "://")
	switch strings.ToLower(scheme) {
	case "file":
		return newFileBackend(url)
	case "s3":
		return newS3Backend(ctx, url)
	case "https", "http":
		return newCloudBackend(url)
	default:
		return nil, fmt.Errorf("backend %q: unsupported; escfs reads file://, s3:// and Pulumi Cloud (https://) backends", url)
	}
}

// store is the storage of a self-managed backend: keys are slash-separated
// paths under the backend's root.
type store interface {
	// modTime returns when each of keys that exists was last modified.
	modTimes(ctx context.Context, keys []string) (map[string]time.Time, error)
	// read returns the object at key; a missing one is an error wrapping
	// os.ErrNotExist.
	read(ctx context.Context, key string) ([]byte, error)
	// where names key for messages: a path or a URL.
	where(key string) string
	// watch tells the cache that results depend on key (file stores only).
	watch(ctx context.Context, key string)
}

// The layout of self-managed backends (see the Pulumi CLI's diy backend).
const (
	stacksDir = ".pulumi/stacks"
	metaFile  = ".pulumi/meta.yaml"
)

// diyBackend finds checkpoints in a store as the Pulumi CLI's diy backend does.
type diyBackend struct {
	url   string
	store store
}

// ReadStack reads the stack's checkpoint and decodes its outputs, decrypting
// secrets with the passphrase (see decrypter).
func (b *diyBackend) ReadStack(ctx context.Context, ref string) (esc.Value, error) {
	project, stack, err := ParseStackRef(ref)
	if err != nil {
		return esc.Value{}, err
	}
	data, location, err := b.readCheckpoint(ctx, project, stack)
	if err != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %w", ref, err)
	}
	dep, err := decodeCheckpoint(data, project)
	if err != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %s: %w", ref, location, err)
	}
	outputs, err := stackOutputs(ctx, dep, func() (config.Decrypter, error) { return decrypter(dep) })
	if err != nil {
		return esc.Value{}, fmt.Errorf("stack %s: %s: %w", ref, location, err)
	}
	return outputs, nil
}

// readCheckpoint returns the checkpoint of project/stack as stored (JSON,
// possibly gzip-compressed) and where it was read from (a path or URL, for
// messages). Its errors name the location.
//
// It reads .pulumi/stacks/PROJECT/STACK.json or .json.gz (the
// newer of both if both exist, as the CLI picks), or in the legacy layout
// without project directories .pulumi/stacks/STACK.json[.gz]. The layout is
// the one .pulumi/meta.yaml names (version 0: legacy, 1 and up: projects);
// without it both are looked for, the project layout first.
func (b *diyBackend) readCheckpoint(ctx context.Context, project, stack string) ([]byte, string, error) {
	version, err := b.metaVersion(ctx)
	if err != nil {
		return nil, b.store.where(metaFile), err
	}
	var bases []string
	switch {
	case version < 0: // no meta.yaml
		bases = []string{path.Join(stacksDir, project, stack), path.Join(stacksDir, stack)}
	case version == 0:
		bases = []string{path.Join(stacksDir, stack)}
	default:
		bases = []string{path.Join(stacksDir, project, stack)}
	}
	var looked, missing []string
	for _, base := range bases {
		plain, gz := base+".json", base+".json.gz"
		times, err := b.store.modTimes(ctx, []string{plain, gz})
		if err != nil {
			return nil, b.store.where(plain), fmt.Errorf("%s: %w", b.store.where(plain), err)
		}
		key := ""
		for _, k := range []string{plain, gz} {
			if t, ok := times[k]; ok && (key == "" || !t.Before(times[key])) {
				key = k
			}
		}
		if key == "" {
			looked = append(looked, b.store.where(plain)+"[.gz]")
			missing = append(missing, plain)
			continue
		}
		b.store.watch(ctx, key)
		data, err := b.store.read(ctx, key)
		if err != nil {
			return nil, b.store.where(key), fmt.Errorf("%s: %w", b.store.where(key), err)
		}
		return data, b.store.where(key), nil
	}
	for _, key := range missing {
		b.store.watch(ctx, key) // a change may create it
	}
	return nil, looked[0], fmt.Errorf("%w in backend %s (looked for %s)", errNotFound, b.url, strings.Join(looked, " and "))
}

// metaVersion returns the version in .pulumi/meta.yaml, or -1 without one.
func (b *diyBackend) metaVersion(ctx context.Context) (int, error) {
	data, err := b.store.read(ctx, metaFile)
	if errors.Is(err, os.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", b.store.where(metaFile), err)
	}
	var meta struct {
		Version *int `yaml:"version"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil || meta.Version == nil {
		return 0, fmt.Errorf("%s: corrupt backend metadata: want version: N", b.store.where(metaFile))
	}
	return *meta.Version, nil
}
