//go:build torture

package torture

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/escfs/escfs/providers/azureclient/azuretest"
	"github.com/escfs/escfs/providers/gcpclient/gcptest"
	"github.com/escfs/escfs/providers/vaultclient/vaulttest"
)

// clouds are the simulations of Google Cloud, Azure and Vault that the
// cloud providers' secret probes call, so that their failures are the
// services' own answers, which echo names ("secret NAME not found").
type clouds struct {
	gcp   *gcptest.Server
	azure *azuretest.Server
	vault *vaulttest.Server
	env   []string // the escfs process's environment, pointing at them
}

const (
	cloudApp    = "00000000-0000-0000-0000-00000000000a"
	cloudSecret = "torture-app-client-secret"
	gcpToken    = "ya29.torture-static-token"
)

func startClouds(t *testing.T) *clouds {
	c := &clouds{gcp: gcptest.New(t), azure: azuretest.New(t), vault: vaulttest.New(t)}
	c.gcp.AddProvider("pool", "prov")
	c.gcp.AddAccessToken(gcpToken, time.Now().Add(time.Hour))
	c.gcp.PutSecret("present", "x")
	c.azure.AddApp(cloudApp, cloudSecret, "sub", true)
	c.azure.PutSecret("present", "x")
	c.vault.Put("", "secret/present", map[string]any{"field": "x"})
	env := os.Environ()
	set := func(k, v string) {
		out := env[:0:0]
		for _, kv := range env {
			if !strings.HasPrefix(kv, k+"=") {
				out = append(out, kv)
			}
		}
		env = append(out, k+"="+v)
	}
	for k, v := range c.gcp.Env() {
		set(k, v)
	}
	for k, v := range c.azure.Env() {
		set(k, v)
	}
	set("VAULT_ADDR", c.vault.URL)
	set("VAULT_TOKEN", "")
	c.env = env
	return c
}

// cloudCases are the secret probes of every input of the Google, Azure
// and Vault providers: each marker is a secret input that the provider
// refuses, or that the service answers "not found" or "invalid" about.
func (c *clouds) cases() []secretCase {
	gcpLogin := func(oidc string) string {
		return "values:\n  l:\n    fn::open::gcp-login:\n      project: 123456789\n      oidc: " + oidc + "\n  environmentVariables:\n    T: ${l.accessToken}\n"
	}
	gcpOIDC := func(kv map[string]string) string {
		m := map[string]string{"workloadPoolId": `"pool"`, "providerId": `"prov"`, "serviceAccount": `"sa@p.iam.gserviceaccount.com"`, "token": `"not.a.jwt"`}
		for k, v := range kv {
			m[k] = v
		}
		var parts []string
		for k, v := range m {
			parts = append(parts, k+": "+v)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	gcpSecrets := func(name string) string {
		return "values:\n  s:\n    fn::open::gcp-secrets:\n      login: {accessToken: " + gcpToken + ", project: 123456789}\n      access: {a: {name: " + name + "}}\n  environmentVariables:\n    S: ${s.a}\n"
	}
	azureLogin := func(kv map[string]string) string {
		m := map[string]string{"clientId": cloudApp, "tenantId": azuretest.Tenant, "subscriptionId": cloudApp, "clientSecret": cloudSecret}
		for k, v := range kv {
			m[k] = v
		}
		s := "values:\n  l:\n    fn::open::azure-login:\n"
		for k, v := range m {
			if v != "" {
				s += "      " + k + ": " + v + "\n"
			}
		}
		return s + "  environmentVariables:\n    T: ${l.accessToken}\n"
	}
	azureSecrets := func(vault, name string) string {
		return "values:\n  l:\n    fn::open::azure-login: {clientId: " + cloudApp + ", tenantId: " + azuretest.Tenant + ", subscriptionId: " + cloudApp + ", clientSecret: " + cloudSecret + "}\n" +
			"  s:\n    fn::open::azure-secrets:\n      login: ${l}\n      vault: " + vault + "\n      get: {a: {name: " + name + "}}\n  environmentVariables:\n    S: ${s.a}\n"
	}
	vaultLogin := func(address, form string) string {
		return "values:\n  l:\n    fn::open::vault-login:\n      address: " + address + "\n      " + form + "\n  environmentVariables:\n    T: ${l.token}\n"
	}
	root := c.vault.RootToken
	vaultSecrets := func(path, field string) string {
		return "values:\n  s:\n    fn::open::vault-secrets:\n      login: {address: " + c.vault.URL + ", token: " + root + "}\n      read: {a: {path: " + path + ", field: " + field + "}}\n  environmentVariables:\n    S: ${s.a}\n"
	}
	sv := secretValue
	return []secretCase{
		{name: "gcp-login-pool", fails: true, def: func(_ *testing.T, m, _ string) string {
			return gcpLogin(gcpOIDC(map[string]string{"workloadPoolId": sv(m)}))
		}},
		{name: "gcp-login-provider", fails: true, def: func(_ *testing.T, m, _ string) string {
			return gcpLogin(gcpOIDC(map[string]string{"providerId": sv(strings.ToLower(m))}))
		}},
		{name: "gcp-login-service-account", fails: true, def: func(_ *testing.T, m, _ string) string {
			return gcpLogin(gcpOIDC(map[string]string{"serviceAccount": sv(m + "@p.iam.gserviceaccount.com")}))
		}},
		{name: "gcp-login-token", fails: true, def: func(_ *testing.T, m, _ string) string {
			return gcpLogin(gcpOIDC(map[string]string{"token": sv(m + ".x.y")}))
		}},
		{name: "gcp-login-lifetime", fails: true, def: func(_ *testing.T, m, _ string) string {
			return gcpLogin(gcpOIDC(map[string]string{"tokenLifetime": sv(m)}))
		}},
		{name: "gcp-login-project", fails: true, def: func(_ *testing.T, m, _ string) string {
			return "values:\n  l:\n    fn::open::gcp-login:\n      project: " + sv(m) + "\n      accessToken: {accessToken: t}\n  environmentVariables:\n    T: ${l.accessToken}\n"
		}},
		{name: "gcp-login-region", fails: true, def: func(_ *testing.T, m, _ string) string {
			return gcpLogin(gcpOIDC(map[string]string{"region": sv(m)}))
		}},
		{name: "gcp-login-token-file", fails: true, def: func(_ *testing.T, m, scratch string) string {
			return gcpLogin(gcpOIDC(map[string]string{"token": `""`, "tokenFile": sv(scratch + "/" + m)}))
		}},
		{name: "gcp-secrets-name", fails: true, def: func(_ *testing.T, m, _ string) string { return gcpSecrets(sv(m)) }},
		{name: "gcp-secrets-version", fails: true, def: func(_ *testing.T, m, _ string) string {
			return strings.Replace(gcpSecrets("present"), "name: present", "name: present, version: "+sv(m), 1)
		}},
		{name: "azure-login-client-id", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureLogin(map[string]string{"clientId": sv(m)})
		}},
		{name: "azure-login-tenant", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureLogin(map[string]string{"tenantId": sv(strings.ToLower(m) + ".onmicrosoft.com")})
		}},
		{name: "azure-login-subscription", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureLogin(map[string]string{"subscriptionId": sv(m)})
		}},
		{name: "azure-login-token-file", fails: true, def: func(_ *testing.T, m, scratch string) string {
			return azureLogin(map[string]string{"clientSecret": "", "oidc": "{tokenFile: " + sv(scratch+"/"+m) + "}"})
		}},
		{name: "azure-login-client-secret", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureLogin(map[string]string{"clientSecret": sv(m)})
		}},
		{name: "azure-login-oidc-token", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureLogin(map[string]string{"clientSecret": "", "oidc": "{token: " + sv(m+".x.y") + "}"})
		}},
		{name: "azure-login-scope", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureLogin(map[string]string{"scope": sv("https://" + m + ".example/.default")})
		}},
		{name: "azure-secrets-name", fails: true, def: func(_ *testing.T, m, _ string) string { return azureSecrets(c.azure.URL, sv(m)) }},
		{name: "azure-secrets-vault", fails: true, def: func(_ *testing.T, m, _ string) string {
			return azureSecrets(sv("https://"+m+".example:8443"), "present")
		}},
		{name: "vault-login-address", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(sv("https://"+m+".example:8200"), "token: {token: "+root+"}")
		}},
		{name: "vault-login-role", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "jwt: {role: "+sv(m)+", token: "+c.vault.JWT("s", "vault", time.Hour)+"}")
		}},
		{name: "vault-login-jwt", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "jwt: {role: r, token: "+sv(m+".x.y")+"}")
		}},
		{name: "vault-login-namespace", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "namespace: "+sv(m)+"\n      token: {token: "+root+"}")
		}},
		{name: "vault-login-mount", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "jwt: {role: r, mount: "+sv(m)+", token: a.b.c}")
		}},
		{name: "vault-login-ttl", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "token: {token: "+root+", ttl: "+sv(m)+"}")
		}},
		{name: "vault-login-policies", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "token: {token: "+c.vault.Token("", time.Hour, "default")+", policies: ["+sv(m)+"]}")
		}},
		{name: "vault-login-token-file", fails: true, def: func(_ *testing.T, m, scratch string) string {
			return vaultLogin(c.vault.URL, "jwt: {role: r, tokenFile: "+sv(scratch+"/"+m)+"}")
		}},
		{name: "vault-login-parent", fails: true, def: func(_ *testing.T, m, _ string) string {
			return vaultLogin(c.vault.URL, "token: {token: "+sv("hvs."+m)+"}")
		}},
		{name: "vault-secrets-path", fails: true, def: func(_ *testing.T, m, _ string) string { return vaultSecrets(sv("secret/"+m), "field") }},
		{name: "vault-secrets-field", fails: true, def: func(_ *testing.T, m, _ string) string { return vaultSecrets("secret/present", sv(m)) }},
	}
}
