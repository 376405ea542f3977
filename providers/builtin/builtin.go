// Package builtin assembles the registry of every provider this build of
// escfs ships.
package builtin

import (
	"github.com/pulumi/esc"

	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awslogin"
	"github.com/escfs/escfs/providers/awsparams"
	"github.com/escfs/escfs/providers/awssecrets"
	"github.com/escfs/escfs/providers/azurelogin"
	"github.com/escfs/escfs/providers/azuresecrets"
	"github.com/escfs/escfs/providers/gcplogin"
	"github.com/escfs/escfs/providers/gcpsecrets"
	"github.com/escfs/escfs/providers/pulumistacks"
	"github.com/escfs/escfs/providers/token"
	"github.com/escfs/escfs/providers/vaultlogin"
	"github.com/escfs/escfs/providers/vaultsecrets"
)

// Registry returns a registry of all providers shipped with escfs.
func Registry() *providers.Registry {
	return providers.NewRegistry(map[string]esc.Provider{
		awslogin.Name:     awslogin.New(),
		awssecrets.Name:   awssecrets.New(),
		awsparams.Name:    awsparams.New(),
		azurelogin.Name:   azurelogin.New(),
		azuresecrets.Name: azuresecrets.New(),
		vaultlogin.Name:   vaultlogin.New(),
		vaultsecrets.Name: vaultsecrets.New(),
		gcplogin.Name:     gcplogin.New(),
		gcpsecrets.Name:   gcpsecrets.New(),
		token.Name:        &token.Provider{},
		pulumistacks.Name: &pulumistacks.Provider{},
	})
}
