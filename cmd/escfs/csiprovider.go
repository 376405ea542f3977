package main

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/escfs/escfs/csiprovider"
	"github.com/escfs/escfs/eval"
)

func init() { commands = append(commands, newCSIProviderCommand) }

func newCSIProviderCommand(g *globalFlags) *cobra.Command {
	var socket, authzFile string
	var evalTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "csi-provider",
		Short: "serve environments to Kubernetes pods as a Secrets Store CSI Driver provider",
		Long: `csi-provider serves the definitions directory to the Secrets Store CSI Driver
on a unix socket (the driver's provider API, v1alpha1). A SecretProviderClass names
the environment (parameters.environment) and, optionally, what to write
(parameters.objects); the pod's service-account token is the OIDC token of the
environment's logins. Which pods may mount which environments is --authz's; without
it every Mount is refused. With --cloud, Pulumi Cloud's environments are served, the
same evaluation to every pod (the service opens providers with its own identity).`,
		Example: `  escfs --dir /etc/escfs/environments csi-provider \
    --socket /etc/kubernetes/secrets-store-csi-providers/escfs.sock \
    --authz /etc/escfs/authz.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			var authz *csiprovider.Authz
			if authzFile != "" {
				var err error
				if authz, err = csiprovider.LoadAuthz(authzFile); err != nil {
					return err
				}
			} else {
				log.Warn("no --authz rules: every Mount is refused")
			}
			ev := newEvaluator()
			opts := eval.StoreOptions{Logger: log, EvalTimeout: evalTimeout,
				FilesDir: func(eval.Name) string { return csiprovider.DefaultFilesDir }}
			src, root, err := g.newSource(cmd.Context(), ev, log, true)
			if err != nil {
				return err
			}
			opts.Source = src
			store, err := eval.NewStore(opts)
			if err != nil {
				return err
			}
			defer store.Close()
			if err := store.Watch(); err != nil {
				return err
			}
			srv := csiprovider.New(csiprovider.Options{
				Store: store, Evaluator: ev, Shared: g.cloudSelected(), Authz: authz,
				Version: buildVersion(), EvalTimeout: evalTimeout, Logger: log,
			})
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log.Info("serving", "socket", socket, "source", root)
			err = csiprovider.Serve(ctx, socket, srv)
			os.Remove(socket)
			return err
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "/etc/kubernetes/secrets-store-csi-providers/escfs.sock", "the unix `SOCKET` the driver calls")
	cmd.Flags().StringVar(&authzFile, "authz", "", "the `FILE` of rules saying which namespaces and service accounts may mount which environments (refused by default)")
	cmd.Flags().DurationVar(&evalTimeout, "eval-timeout", 30*time.Second, "bound on one evaluation")
	return cmd
}

// buildVersion is the version Version reports to the driver: the module
// version, or "0.0.0-devel" for a build without one (the driver wants
// semver).
func buildVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; strings.HasPrefix(v, "v") {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "0.0.0-devel"
}
