// Package awslogin implements the aws-login provider: AWS credentials for an
// environment, as the Pulumi ESC provider of the same name returns them.
//
// This version serves the static form:
//
//	fn::open::aws-login:
//	  static:
//	    accessKeyId: AKIA...
//	    secretAccessKey: ...
//	    sessionToken: ...   # optional
//
// The outputs are accessKeyId, secretAccessKey and sessionToken; all but
// accessKeyId are secret.
package awslogin

import (
	"context"
	"errors"
	"fmt"

	"github.com/pulumi/esc"
	"github.com/pulumi/esc/schema"

	"github.com/escfs/escfs/providers"
)

// Name is the name environments use to open this provider: fn::open::aws-login.
const Name = "aws-login"

// Provider is the aws-login provider.
type Provider struct{}

var _ esc.Provider = Provider{}

// New returns the aws-login provider.
func New() Provider { return Provider{} }

// Schema returns the provider's inputs (one of the login forms) and outputs.
func (Provider) Schema() (inputs, outputs *schema.Schema) {
	static := schema.Record(schema.BuilderMap{
		"accessKeyId":     schema.String().Description("The AWS access key ID."),
		"secretAccessKey": schema.String().Description("The AWS secret access key."),
	}).Properties(schema.BuilderMap{
		"sessionToken": schema.String().Description("The AWS session token, if any."),
	})
	inputs = schema.Object().Properties(schema.BuilderMap{
		"static": static,
	}).Required("static").Schema()
	outputs = schema.Record(schema.BuilderMap{
		"accessKeyId":     schema.String(),
		"secretAccessKey": schema.String(),
		"sessionToken":    schema.String(),
	}).Schema()
	return inputs, outputs
}

// Open returns the credentials described by the inputs.
func (Provider) Open(_ context.Context, inputs map[string]esc.Value, _ esc.EnvExecContext) (esc.Value, error) {
	static, err := providers.Object(inputs, "static")
	if err != nil {
		return esc.Value{}, err
	}
	if static == nil {
		return esc.Value{}, errors.New("aws-login: one login form is required (static)")
	}
	creds, err := staticCredentials(static)
	if err != nil {
		return esc.Value{}, fmt.Errorf("aws-login static: %w", err)
	}
	return creds.value(), nil
}

// credentials are one set of AWS credentials.
type credentials struct {
	accessKeyID, secretAccessKey, sessionToken string
}

func (c credentials) value() esc.Value {
	return esc.NewValue(map[string]esc.Value{
		"accessKeyId":     esc.NewValue(c.accessKeyID),
		"secretAccessKey": esc.NewSecret(c.secretAccessKey),
		"sessionToken":    esc.NewSecret(c.sessionToken),
	})
}

func staticCredentials(in map[string]esc.Value) (credentials, error) {
	var c credentials
	var err error
	if c.accessKeyID, err = providers.String(in, "accessKeyId"); err != nil {
		return c, err
	}
	if c.secretAccessKey, err = providers.String(in, "secretAccessKey"); err != nil {
		return c, err
	}
	if c.sessionToken, err = providers.String(in, "sessionToken"); err != nil {
		return c, err
	}
	if c.accessKeyID == "" || c.secretAccessKey == "" {
		return c, errors.New("accessKeyId and secretAccessKey are required")
	}
	return c, nil
}
