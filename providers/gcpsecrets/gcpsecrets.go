// Package gcpsecrets implements the gcp-secrets provider: secrets from
// Google Cloud Secret Manager, as the Pulumi ESC provider of the same name
// reads them.
//
//	fn::open::gcp-secrets:
//	  login: ${gcp.login}     # a gcp-login output: accessToken and project
//	  access:
//	    api-key:              # the output's name
//	      name: api-key       # the secret, in the login's project
//	      version: "3"        # optional, default latest
//
// Each secret is read with versions.access and its payload's CRC32C
// checked; the outputs are the payloads as strings, all secret. A secret
// that is missing, disabled or refused is an error naming the output, the
// secret and Secret Manager's code and message.
package gcpsecrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"
	"golang.org/x/sync/errgroup"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/gcpclient"
)

// Name is the name environments use to open this provider: fn::open::gcp-secrets.
const Name = "gcp-secrets"

// parallel bounds the secrets read at once.
const parallel = 8

// maxSecret is Secret Manager's bound on a payload (64 KiB), with room for
// its base64 and the JSON around it.
const maxSecret = 256 << 10

// Provider is the gcp-secrets provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the gcp-secrets provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	login := providers.ObjectSchema(schema.BuilderMap{
		"accessToken": schema.String(),
		"project":     schema.Number(),
	}, schema.BuilderMap{
		"expiry":    schema.String(),
		"tokenType": schema.String(),
	}).Description("The output of a gcp-login provider.")
	secret := providers.ObjectSchema(schema.BuilderMap{
		"name": schema.String().Description("The secret's name in the login's project."),
	}, schema.BuilderMap{
		"version": schema.String().Description("The version: a number, an alias or latest (the default)."),
	})
	inputs = providers.ObjectSchema(schema.BuilderMap{
		"login":  login,
		"access": schema.Record(schema.BuilderMap{}).AdditionalProperties(secret).Description("The secrets to read, by output name."),
	}, nil).Schema()
	outputs = schema.Record(schema.BuilderMap{}).AdditionalProperties(schema.String()).Schema()
	return inputs, outputs
}

// request is one secret to read.
type request struct {
	output, name, version string
}

var (
	// secretName is what Secret Manager accepts as a secret ID.
	secretName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)
	// versionName is a version number, an alias or latest.
	versionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
	digits      = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// Open reads every secret of the access input.
func (Provider) Open(ctx context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	out, err := open(ctx, inputs)
	if err != nil {
		return esc.Value{}, fmt.Errorf("gcp-secrets: %w", err)
	}
	return out, nil
}

func open(ctx context.Context, inputs map[string]esc.Value) (esc.Value, error) {
	if err := providers.CheckKnown(inputs, []string{"login", "access"}); err != nil {
		return esc.Value{}, err
	}
	token, project, err := loginInput(inputs)
	if err != nil {
		return esc.Value{}, err
	}
	reqs, err := accessInput(inputs)
	if err != nil {
		return esc.Value{}, err
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	values := make([]string, len(reqs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, r := range reqs {
		g.Go(func() error {
			v, err := access(gctx, token, project, r)
			if err != nil {
				return fmt.Errorf("%s: %w", providers.EntryPath("access", r.output), err)
			}
			values[i] = v
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return esc.Value{}, err
	}
	m := make(map[string]esc.Value, len(reqs))
	for i, r := range reqs {
		m[r.output] = esc.NewSecret(values[i])
	}
	return esc.NewValue(m), nil
}

// loginInput returns the access token and project number of the login.
func loginInput(inputs map[string]esc.Value) (token, project string, err error) {
	login, err := providers.Object(inputs, "login")
	if err != nil {
		return "", "", err
	}
	if login == nil {
		return "", "", errors.New("login (a gcp-login output) is required")
	}
	if token, err = providers.RequiredString(login, "accessToken"); err != nil {
		return "", "", fmt.Errorf("login: %w", err)
	}
	switch p := login["project"].Value.(type) {
	case json.Number:
		project = p.String()
	case string:
		project = p
	}
	if !digits.MatchString(project) {
		return "", "", errors.New("login: project must be a project number")
	}
	return token, project, nil
}

// accessInput returns the secrets to read, sorted by output name.
func accessInput(inputs map[string]esc.Value) ([]request, error) {
	access, err := providers.Object(inputs, "access")
	if err != nil {
		return nil, err
	}
	if len(access) == 0 {
		return nil, errors.New("access must name at least one secret")
	}
	reqs := make([]request, 0, len(access))
	for output, v := range access {
		path := providers.EntryPath("access", output)
		in, ok := v.Value.(map[string]esc.Value)
		if !ok {
			return nil, fmt.Errorf("%s must be an object with name and, optionally, version", path)
		}
		if err := providers.CheckKnown(in, []string{"name", "version"}); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r := request{output: output, version: "latest"}
		if r.name, err = providers.RequiredString(in, "name"); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !secretName.MatchString(r.name) {
			return nil, fmt.Errorf("%s: name is not a secret ID (1 to 255 of letters, digits, _ and -)", path)
		}
		if v, err := providers.String(in, "version"); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		} else if v != "" {
			r.version = v
		}
		if !versionName.MatchString(r.version) {
			return nil, fmt.Errorf("%s: version is not a version number, alias or latest", path)
		}
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].output < reqs[j].output })
	return reqs, nil
}

// access reads one secret version.
func access(ctx context.Context, token, project string, r request) (string, error) {
	resource := fmt.Sprintf("projects/%s/secrets/%s/versions/%s", project, r.name, r.version)
	op := "secretmanager access " + resource
	u, err := gcpclient.SecretManager.URL("v1/" + resource + ":access")
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := gcpclient.Client.Do(req)
	if err != nil {
		return "", gcpclient.Describe(op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSecret+1))
	if err != nil {
		return "", gcpclient.Describe(op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %w", op, gcpclient.ParseError(resp.StatusCode, body))
	}
	if len(body) > maxSecret {
		return "", fmt.Errorf("%s: the answer is larger than %d bytes", op, maxSecret)
	}
	var doc struct {
		Payload struct {
			Data       string `json:"data"`
			DataCrc32c string `json:"dataCrc32c"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("%s: the answer is not a secret version", op)
	}
	data, err := base64.StdEncoding.DecodeString(doc.Payload.Data)
	if err != nil {
		return "", fmt.Errorf("%s: the payload is not base64", op)
	}
	if doc.Payload.DataCrc32c != "" {
		want, err := strconv.ParseUint(doc.Payload.DataCrc32c, 10, 32)
		if err != nil || crc32.Checksum(data, castagnoli) != uint32(want) {
			return "", fmt.Errorf("%s: the payload does not match its CRC32C checksum (corrupted in transit)", op)
		}
	}
	if !utf8.Valid(data) {
		return "", fmt.Errorf("%s: the payload is binary, not text", op)
	}
	return string(data), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
