package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/fs"
)

func init() {
	commands = append(commands, newMountCommand, newUnmountCommand)
}

func newMountCommand(g *globalFlags) *cobra.Command {
	var (
		uid, gid    int
		allowOther  bool
		logLevel    string
		debug       bool
		refresh     eval.RefreshPolicy
		evalTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Serve every environment as a live, read-only directory (FUSE), in the foreground",
		Long: `mount serves the definitions directory at MOUNTPOINT until SIGINT or SIGTERM:

  MOUNTPOINT/prod/env           export lines for every environmentVariables and files entry
  MOUNTPOINT/prod/dotenv        the same for dotenv loaders and docker --env-file
  MOUNTPOINT/prod/values.json   all values, secrets revealed, as 'esc open -f json'
  MOUNTPOINT/prod/files/NAME    one file per files entry (env points its variable here)
  MOUNTPOINT/prod/status        JSON: unevaluated|evaluating|ok|stale|expired|error, when, diagnostics

DIR/demos/aws-access.yaml appears as MOUNTPOINT/demos/aws-access/. Nothing is evaluated
until someone looks inside an environment; results are cached until the definition or
anything it imports changes (the directory is watched). An environment with errors
fails reads with EIO and explains itself in status.

Credentials expire, environments refresh. A snapshot holding credentials that expire
(aws-login sessions, the token provider) is fresh until expiry less --refresh-margin
(default: the smaller of 5 minutes and a third of its lifetime). An environment read
within --keep-warm is re-evaluated in the background before then, so readers never
wait; an idle one is re-evaluated on its next read. No reader ever gets an expired
snapshot: after expiry a read waits for the new evaluation (at most --eval-timeout) and
fails with EIO if it does not come. If a renewal fails, the previous snapshot is served
until it really expires, retries back off with jitter, and status says "stale" with
the error. Renewals of one environment are at least --min-renewal-interval apart, and
no reader waits longer than --eval-timeout, whatever an evaluation does. Definitions over
the global --max-* limits (size, nesting, import depth, expanded imports) are refused
with a located diagnostic before they are evaluated. A renewal re-opens every provider call of the environment (ESC has no
partial re-open). env exports ESCFS_EXPIRES_AT (RFC 3339) when the snapshot expires.

With --cloud, the environments are those of a Pulumi Cloud organization, opened by the
service: MOUNTPOINT/PROJECT/ENV/ (MOUNTPOINT/ENV/ for project "default"). A snapshot
expires when its open session ends (--open-duration, default 1h) or earlier if its values
carry an earlier expiration/expiresAt, and is renewed before then as above. Every --poll
(default 30s) escfs lists the organization (environments appear and vanish) and asks for
the latest revision of each environment opened so far and of those they import: a new
revision drops it and its importers, and the next read opens it again. If the service
fails (unreachable, 5xx, 429), the last snapshot is served until it expires (status
"stale"); a refused token is an error whose status says to run esc login or set
PULUMI_ACCESS_TOKEN.

Files are 0400 and directories 0500, owned by the mounting user (or --uid/--gid), and
only that user and root may read them. Secrets stay in memory. As root escfs mounts
directly; other users need fusermount3 (Debian package fuse3). A stale mount left by a
killed escfs on MOUNTPOINT is cleared first; a live or wedged escfs mount there, or a
MOUNTPOINT that is not a directory, is refused. SIGINT or SIGTERM unmounts (lazily if
the mount is busy: escfs serves the remaining users until they leave, a second signal
stops it at once).`,
		Example: `  escfs --dir examples mount /tmp/esc &
  source /tmp/esc/demos/aws-access/env
  KUBECONFIG=/tmp/esc/demos/cluster/files/KUBECONFIG kubectl config view
  jq .aws /tmp/esc/demos/aws-access/values.json
  escfs unmount /tmp/esc
  escfs --cloud acme mount ~/esc &
  source ~/esc/infra/aws/env`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// First of all: a SIGINT or SIGTERM that arrives while escfs is
			// still mounting must unmount, not kill it with the mount left dead.
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sigs)
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if err := validateMountFlags(refresh, evalTimeout); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			// Keep same-uid processes out of this process's memory and environ.
			if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
				log.Warn("prctl(PR_SET_DUMPABLE)", "error", err.Error())
			}
			if uid >= 0 && !allowOther && uid != os.Getuid() {
				log.Warn("--uid without --allow-other: the kernel lets only the mounting user in")
			}
			mnt := args[0]
			opts := eval.StoreOptions{
				FilesDir:    fs.FilesDir(absPath(mnt)),
				Logger:      log,
				Refresh:     refresh,
				EvalTimeout: evalTimeout,
			}
			src, source, err := g.newSource(cmd.Context(),
				servingEvaluator(uint32(orDefault(uid, os.Getuid())), uint32(orDefault(gid, os.Getgid()))), log, true)
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
			m, err := fs.New(fs.Config{
				Store:      store,
				Mountpoint: mnt,
				UID:        uint32(orDefault(uid, os.Getuid())),
				GID:        uint32(orDefault(gid, os.Getgid())),
				AllowOther: allowOther,
				Logger:     log,
				Debug:      debug,
			})
			if err != nil {
				return err
			}
			log.Info("mounted", "source", source, "mountpoint", m.Mountpoint(), "environments", len(store.Tree().Definitions()))

			unmounted := make(chan struct{})
			go func() { m.Wait(); close(unmounted) }()
			select {
			case sig := <-sigs:
				log.Info("unmounting", "mountpoint", m.Mountpoint(), "signal", sig.String())
				return shutdown(m, sigs, unmounted, log)
			case <-unmounted:
				log.Info("unmounted from outside", "mountpoint", m.Mountpoint())
				return nil
			}
		},
	}
	cmd.Flags().IntVar(&uid, "uid", -1, "owner of every file (default: the mounting user)")
	cmd.Flags().IntVar(&gid, "gid", -1, "group of every file (default: the mounting user's group)")
	cmd.Flags().BoolVar(&allowOther, "allow-other", false, "let the kernel pass other users' requests (with default_permissions; still only the owner and root may read)")
	cmd.Flags().DurationVar(&refresh.KeepWarm, "keep-warm", 15*time.Minute, "renew environments read within this long in the background before they expire (negative: never)")
	cmd.Flags().DurationVar(&refresh.Margin, "refresh-margin", 0, "renew this long before credentials expire (0: min(5m, a third of their lifetime))")
	keyCacheFlag(cmd)
	cmd.Flags().DurationVar(&evalTimeout, "eval-timeout", 30*time.Second, "longest one evaluation may take (and a reader may wait for expired credentials)")
	cmd.Flags().DurationVar(&refresh.MinInterval, "min-renewal-interval", eval.DefaultMinRenewalInterval, "least time between two renewals of one environment (credentials living shorter expire between renewals)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().BoolVar(&debug, "debug-fuse", false, "log every FUSE request and reply to stderr (names and sizes, never file contents)")
	return cmd
}

// shutdown unmounts m as escfs unmount does: at once if nothing uses it,
// else lazily, serving the remaining users until they leave or another
// signal arrives (they then get ENOTCONN).
func shutdown(m *fs.Mount, sigs <-chan os.Signal, unmounted <-chan struct{}, log *slog.Logger) error {
	busy, err := m.Detach()
	if err != nil {
		return err
	}
	if busy {
		log.Info("detached lazily: serving the open files and working directories still inside until they leave; signal again to stop now", "mountpoint", m.Mountpoint())
		select {
		case <-unmounted:
		case sig := <-sigs:
			log.Warn("stopping while the detached mount is in use: its users get ENOTCONN", "signal", sig.String())
		}
		return nil
	}
	select {
	case <-unmounted:
	case <-time.After(5 * time.Second):
		log.Warn("server did not stop within 5s of the unmount; exiting", "mountpoint", m.Mountpoint())
	}
	return nil
}

func newUnmountCommand(_ *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "unmount MOUNTPOINT",
		Short: "Unmount an escfs mount (lazily if it is busy; clears a stale or wedged one)",
		Long: `unmount unmounts the escfs mount at MOUNTPOINT: at once if nothing uses it, else lazily
(as umount -l: it leaves the namespace now and its server keeps serving the open files
and working directories inside until they leave).

Only escfs mounts (type fuse.escfs in /proc/self/mountinfo) are touched: anything else
at MOUNTPOINT is reported and left alone, with exit status 1.

It never hangs on a server that does not answer. A mount whose escfs was killed is
detached. One whose escfs is stopped (SIGSTOP) or hung is detached too and, as root,
its FUSE connection is aborted through /sys/fs/fuse/connections (fusectl is mounted
there if it is not), so that the programs blocked on it fail (ECONNABORTED) instead of
waiting forever.`,
		Example: `  escfs unmount /tmp/esc
  escfs --cloud acme mount ~/esc &
  source ~/esc/infra/aws/env`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return fs.Unmount(args[0], log)
		},
	}
}

// servingEvaluator is the mount's evaluator: it reads only the definitions
// the user it serves could trust (see eval.Reader).
func servingEvaluator(uid, gid uint32) *eval.Evaluator {
	ev := newEvaluator()
	ev.Reader = &eval.Reader{UID: uid, GID: gid}
	return ev
}

// validateMountFlags refuses refresh and timeout settings that make no
// sense, before anything is mounted.
func validateMountFlags(refresh eval.RefreshPolicy, evalTimeout time.Duration) error {
	if evalTimeout <= 0 {
		return fmt.Errorf("--eval-timeout %s: must be positive", evalTimeout)
	}
	if refresh.MinInterval <= 0 {
		return fmt.Errorf("--min-renewal-interval %s: must be positive", refresh.MinInterval)
	}
	if err := refresh.Validate(); err != nil {
		return fmt.Errorf("--refresh-margin/--keep-warm: %w", err)
	}
	return nil
}

func orDefault(v, def int) int {
	if v < 0 {
		return def
	}
	return v
}
