// Package azureclient holds what the Azure providers (azure-login,
// azure-secrets) share: credentials of azidentity for a login, the client
// options (endpoints, HTTP client, retries), and the translation of
// Microsoft Entra ID's and Key Vault's errors into messages that carry the
// service's code and message and never a secret.
//
// The authority is Azure's public cloud unless the user sets
// AZURE_AUTHORITY_HOST (as azidentity reads it: Azure Government, China, a
// private cloud); a definition cannot name it. TLS roots are the system's
// (SSL_CERT_FILE and SSL_CERT_DIR add others).
package azureclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/providers"
)

// ManagementScope is the scope of azure-login's access token: Azure
// Resource Manager, which az, Terraform and Pulumi's azure-native use.
const ManagementScope = "https://management.azure.com/.default"

// Client is the HTTP client of the Azure providers: redirects stay on
// their origin and bodies are bounded.
var Client = newClient()

func newClient() *http.Client {
	c := &http.Client{Timeout: providers.CallTimeout}
	safehttp.Harden(c, 0)
	return c
}

// Options returns the client options of every Azure call: the hardened
// client and two retries.
func Options() azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: Client,
		Retry:     policy.RetryOptions{MaxRetries: 2, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 4 * time.Second},
	}
}

// Login is what a credential needs: the application, its tenant, and
// either its client secret or a federated assertion (an OIDC token).
type Login struct {
	TenantID, ClientID string
	ClientSecret       string
	Assertion          string
}

// Credential returns the credential of l.
func (l Login) Credential() (azcore.TokenCredential, error) {
	// Instance discovery asks the public cloud about the authority: not
	// for one the user names (a sovereign or private cloud, a test).
	custom := os.Getenv("AZURE_AUTHORITY_HOST") != ""
	switch {
	case l.ClientSecret != "":
		return azidentity.NewClientSecretCredential(l.TenantID, l.ClientID, l.ClientSecret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: Options(), DisableInstanceDiscovery: custom})
	case l.Assertion != "":
		assertion := l.Assertion
		return azidentity.NewClientAssertionCredential(l.TenantID, l.ClientID, func(context.Context) (string, error) { return assertion, nil },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: Options(), DisableInstanceDiscovery: custom})
	}
	return nil, errors.New("a client secret or an OIDC token is required")
}

// Describe turns an error of an Azure call into "OP: CODE: message",
// CODE being Entra ID's (invalid_client, with its AADSTS number in the
// message) or Key Vault's (SecretNotFound, Forbidden). It quotes neither
// the request nor anything it carried.
func Describe(op string, err error) error {
	if err == nil {
		return nil
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		if authErr.RawResponse != nil {
			return fmt.Errorf("%s: %s", op, parseEntraError(authErr.RawResponse))
		}
		// No answer: the message is MSAL's, as text (the connection's error).
		msg, _, _ := strings.Cut(authErr.Error(), " To troubleshoot")
		msg = strings.Join(strings.Fields(msg), " ")
		return fmt.Errorf("%s: %s", op, providers.Bound(strings.TrimSuffix(msg, ".")))
	}
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) {
		return fmt.Errorf("%s: %s", op, parseServiceError(respErr))
	}
	if terr := providers.DescribeTransport(op, err); terr != nil {
		return terr
	}
	return fmt.Errorf("%s: %w", op, err)
}

// parseEntraError reads an OAuth error answer of Entra ID.
func parseEntraError(resp *http.Response) string {
	body := payload(resp)
	var doc struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Error == "" {
		return fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	// Entra ID appends "Trace ID: ... Correlation ID: ... Timestamp: ...".
	desc, _, _ := strings.Cut(doc.Description, "\r\n")
	desc, _, _ = strings.Cut(desc, " Trace ID:")
	return providers.Bound(doc.Error) + ": " + providers.Bound(desc)
}

// parseServiceError reads an error answer of Key Vault (or ARM):
// {"error": {"code", "message", "innererror": {"code"}}}.
func parseServiceError(e *azcore.ResponseError) string {
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Inner   struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	code := e.ErrorCode
	if e.RawResponse != nil && json.Unmarshal(payload(e.RawResponse), &doc) == nil && doc.Error.Code != "" {
		code = doc.Error.Code
		if doc.Error.Inner.Code != "" {
			code += "/" + doc.Error.Inner.Code
		}
		return providers.Bound(code) + ": " + providers.Bound(doc.Error.Message)
	}
	if code == "" {
		code = fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return providers.Bound(code)
}

// payload is the body of resp, which azcore keeps readable again.
func payload(resp *http.Response) []byte {
	if resp.Body == nil {
		return nil
	}
	b, _ := runtime.Payload(resp)
	return b
}
