package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Daemon defaults: the embedded configuration `make run` uses.
const (
	defaultDataDir = "/var/lib/cowvol"
	defaultMount   = "/mnt/cowvol"
	defaultKeyring = "/etc/cowvol/keyring"
	// defaultStateRoot is where state directories go: tmpfs, so what a
	// server hands its successor costs no disk I/O and goes with a reboot.
	defaultStateRoot = "/run/cowvol"
	defaultRegion    = "us-east-1"
	// defaultAccountID is the ownerId a daemon reports unless told otherwise.
	defaultAccountID = "000000000000"
	// defaultMemoryLimit is the Go runtime's soft memory limit: the
	// collector works harder as the heap nears it, instead of letting it
	// grow to twice what is live (docs/ARCHITECTURE.md, "Memory").
	defaultMemoryLimit = "192MiB"
)

// applyMemoryLimit sets the runtime's soft memory limit from the
// --memory-limit flag, unless GOMEMLIMIT set one already.
func applyMemoryLimit(s string) error {
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	if s == "off" {
		debug.SetMemoryLimit(math.MaxInt64)
		return nil
	}
	n, err := parseSize(s, mib)
	if err != nil {
		return fmt.Errorf("--memory-limit: %v", err)
	}
	if n < 32*mib {
		return fmt.Errorf("--memory-limit %s: below the 32MiB the daemon needs to run", s)
	}
	debug.SetMemoryLimit(n)
	return nil
}

// daemonFlags are the flags of `daemon` and of the server it runs.
func daemonFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "data-dir", Value: defaultDataDir, EnvVars: []string{"COWVOL_DATA_DIR"},
			Usage: "metadata and block data; never on one of cowvol's own volumes"},
		&cli.StringFlag{Name: "mount", Value: defaultMount, EnvVars: []string{"COWVOL_MOUNT"},
			Usage: "where the volume files appear"},
		&cli.StringFlag{Name: "state-dir", EnvVars: []string{"COWVOL_STATE_DIR"},
			Usage: "what a server hands its successor (the FUSE session, open files, writes not yet synced); on tmpfs (default " + defaultStateRoot + "/state-<hash of the data dir>)"},
		&cli.StringFlag{Name: "snapshot-store", EnvVars: []string{"COWVOL_SNAPSHOT_STORE"},
			Usage: "regional snapshot storage URL (default file://<data-dir>/snapshots)"},
		&cli.StringFlag{Name: "outpost-arn", EnvVars: []string{"COWVOL_OUTPOST_ARN"},
			Usage: "make this host an Outpost: CreateSnapshot with this ARN stores locally"},
		&cli.StringFlag{Name: "local-snapshot-store", EnvVars: []string{"COWVOL_LOCAL_SNAPSHOT_STORE"},
			Usage: "the Outpost's local snapshot storage URL (with --outpost-arn)"},
		&cli.StringFlag{Name: "archive-store", EnvVars: []string{"COWVOL_ARCHIVE_STORE"},
			Usage: "archive tier storage URL (file:///path or s3://bucket/prefix): where ModifySnapshotTier moves snapshots; none: no archive tier"},
		&cli.DurationFlag{Name: "tier-day", Hidden: true, EnvVars: []string{"COWVOL_TIER_DAY"},
			Usage: "(tests only) the length of a day of RestoreSnapshotTier's TemporaryRestoreDays"},
		&cli.DurationFlag{Name: "sync-interval", Value: cow.DefaultSyncInterval, EnvVars: []string{"COWVOL_SYNC_INTERVAL"},
			Usage: "how long an un-fsynced write may stay volatile"},
		&cli.StringFlag{Name: "account-id", Value: defaultAccountID, EnvVars: []string{"COWVOL_ACCOUNT_ID"},
			Usage: "12-digit owner ID reported in responses"},
		&cli.StringSliceFlag{Name: "allow-uid", EnvVars: []string{"COWVOL_ALLOW_UID"},
			Usage: "users (number or name) who may use the socket, besides root and the daemon's user"},
		&cli.StringSliceFlag{Name: "allow-gid", EnvVars: []string{"COWVOL_ALLOW_GID"},
			Usage: "groups (number or name) whose members may use the socket"},
		&cli.StringSliceFlag{Name: "read-only-gid", EnvVars: []string{"COWVOL_READ_ONLY_GID"},
			Usage: "groups whose members may call Describe* only"},
		&cli.StringFlag{Name: "volume-group", EnvVars: []string{"COWVOL_VOLUME_GROUP"},
			Usage: "group (number or name) whose members may read and write volume files and read snapshot files; default: only root and the daemon's user"},
		&cli.StringFlag{Name: "listen", EnvVars: []string{"COWVOL_LISTEN"},
			Usage: "also serve the API on this TCP address (e.g. 127.0.0.1:8773), SigV4-signed requests only"},
		&cli.StringFlag{Name: "credentials-file", EnvVars: []string{"COWVOL_CREDENTIALS_FILE"},
			Usage: "access keys that may sign requests to --listen (AWS credentials file format)"},
		&cli.StringFlag{Name: "keyring", Value: defaultKeyring, EnvVars: []string{"COWVOL_KEYRING"},
			Usage: "the KMS keys (a private directory, kept apart from the data dir)"},
		&cli.StringFlag{Name: "region", Value: defaultRegion, EnvVars: []string{"COWVOL_REGION"},
			Usage: "the region in KMS key ARNs"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"COWVOL_LOG_LEVEL"},
			Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: logFormatText, EnvVars: []string{"COWVOL_LOG_FORMAT"},
			Usage: "text (key=value lines) or json (one object a line)"},
		&cli.DurationFlag{Name: "flush-deadline", Value: cow.DefaultFlushDeadline, EnvVars: []string{"COWVOL_FLUSH_DEADLINE"},
			Usage: "how long a snapshot retries a failing store before it ends in state error"},
		&cli.DurationFlag{Name: "gc-grace", Value: cow.DefaultGCGrace, EnvVars: []string{"COWVOL_GC_GRACE"},
			Usage: "snapshot-store garbage younger than this is kept (daemons sharing a store, clock skew)"},
		&cli.StringFlag{Name: "memory-limit", Value: defaultMemoryLimit, EnvVars: []string{"COWVOL_MEMORY_LIMIT"},
			Usage: "soft limit on the daemon's Go memory (e.g. 192MiB; off: none); GOMEMLIMIT, when set, wins"},
		&cli.StringFlag{Name: "metrics-listen", EnvVars: []string{"COWVOL_METRICS_LISTEN"},
			Usage: "also serve Prometheus metrics at /metrics over plain HTTP on `ADDR` (PORT or :PORT: loopback; they are always on the socket)"},
		&cli.BoolFlag{Name: "pprof", EnvVars: []string{"COWVOL_PPROF"},
			Usage: "serve Go profiles at /debug/pprof/ on the socket, to callers with full access"},
		&cli.BoolFlag{Name: "direct-io", EnvVars: []string{"COWVOL_DIRECT_IO"},
			Usage: "volumes' data files bypass the page cache for whole-page I/O (O_DIRECT): faster honest fsync at queue depth 1, slower reads (docs/measurements.md)"},
		&cli.BoolFlag{Name: "debug-fuse", EnvVars: []string{"COWVOL_DEBUG_FUSE"},
			Usage: "log every FUSE request"},
		// Test only (hidden): locks that expire in seconds.
		&cli.DurationFlag{Name: "test-lock-day", Hidden: true,
			Usage: "TEST ONLY: the length of a day of snapshot lock durations (a cooling-off hour is a 24th of it); default 24h, as EC2"},
		// No environment variable: this is for one start, never a
		// standing setting.
		// Test-only, hidden: a Recycle Bin retention DAY of this length
		// (seconds instead of days), so that tests see retention end.
		&cli.DurationFlag{Name: "recycle-bin-day", Value: cow.DefaultRecycleBinDay, Hidden: true,
			Usage: "(tests only) the length of a Recycle Bin retention day"},
		&cli.BoolFlag{Name: "accept-metadata-loss",
			Usage: "start even though the metadata store is damaged or does not explain the data files, keeping what cannot be placed in <data-dir>/lost+found (for one start)"},
	}, lifecycleFlags()...)
}

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name: "daemon",
		Usage: "serve volumes: FUSE files under --mount, the EC2 API on --socket; a supervisor that holds the mount " +
			"and restarts the server it runs, so that a crash or an upgrade (SIGHUP) never breaks a mounted file system",
		Flags: daemonFlags(),
		Action: func(c *cli.Context) error {
			cfg, err := configFromFlags(c)
			if err != nil {
				return err
			}
			if err := runSupervisor(c, cfg); err != nil {
				cfg.log.Error("daemon failed", "err", err)
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}

// serveCommand is the server the daemon runs: it serves the FUSE
// connection and the control socket the daemon hands it.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:   "serve",
		Usage:  "(internal) the server `cowvol daemon` runs",
		Hidden: true,
		Flags:  daemonFlags(),
		Action: func(c *cli.Context) error {
			cfg, err := configFromFlags(c)
			if err != nil {
				return err
			}
			if err := runServer(c.Context, cfg); err != nil {
				cfg.log.Error("server failed", "err", err)
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}

// configFromFlags checks the daemon's flags and makes its configuration,
// paths resolved.
func configFromFlags(c *cli.Context) (daemonConfig, error) {
	log, err := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return daemonConfig{}, cli.Exit(err.Error(), 252)
	}
	if err := validateGCGrace(c.Duration("gc-grace")); err != nil {
		return daemonConfig{}, cli.Exit(err.Error(), 252)
	}
	if d := c.Duration("recycle-bin-day"); d <= 0 {
		return daemonConfig{}, cli.Exit(fmt.Sprintf("--recycle-bin-day %v: must be positive", d), 252)
	}
	if err := applyMemoryLimit(c.String("memory-limit")); err != nil {
		return daemonConfig{}, cli.Exit(err.Error(), 252)
	}
	policy, err := policyFromFlags(c.StringSlice("allow-uid"), c.StringSlice("allow-gid"), c.StringSlice("read-only-gid"))
	if err != nil {
		return daemonConfig{}, cli.Exit(err.Error(), 252)
	}
	volumeGroup, err := volumeGroupFromFlag(c.String("volume-group"))
	if err != nil {
		return daemonConfig{}, cli.Exit(err.Error(), 252)
	}
	if !validAccountID(c.String("account-id")) {
		return daemonConfig{}, cli.Exit(fmt.Sprintf("--account-id %q: want 12 digits", c.String("account-id")), 252)
	}
	if (c.String("listen") == "") != (c.String("credentials-file") == "") {
		return daemonConfig{}, cli.Exit("--listen and --credentials-file go together", 252)
	}
	metricsListen := ""
	if a := c.String("metrics-listen"); a != "" {
		if metricsListen, err = metricsAddr(a); err != nil {
			return daemonConfig{}, cli.Exit(err.Error(), 252)
		}
	}
	if (c.String("outpost-arn") == "") != (c.String("local-snapshot-store") == "") {
		return daemonConfig{}, cli.Exit("--outpost-arn and --local-snapshot-store go together", 252)
	}
	cfg := daemonConfig{
		dataDir:       c.String("data-dir"),
		mount:         c.String("mount"),
		stateDir:      c.String("state-dir"),
		socket:        globalString(c, "socket"),
		syncInterval:  c.Duration("sync-interval"),
		accountID:     c.String("account-id"),
		snapshotStore: c.String("snapshot-store"),
		localStore:    c.String("local-snapshot-store"),
		archiveStore:  c.String("archive-store"),
		tierDay:       c.Duration("tier-day"),
		outpostArn:    c.String("outpost-arn"),
		debugFUSE:     c.Bool("debug-fuse"),
		policy:        policy,
		volumeGroup:   volumeGroup,
		pprof:         c.Bool("pprof"),
		directIO:      c.Bool("direct-io"),
		keyring:       c.String("keyring"),
		region:        c.String("region"),
		listen:        c.String("listen"),
		credentials:   c.String("credentials-file"),
		log:           log,
		flushDeadline: c.Duration("flush-deadline"),
		gcGrace:       c.Duration("gc-grace"),
		lockDay:       c.Duration("test-lock-day"),
		acceptLoss:    c.Bool("accept-metadata-loss"),
		metricsListen: metricsListen,
		recycleBinDay: c.Duration("recycle-bin-day"),

		testLifecycleMinutes: c.Bool(flagTestLifecycleMinutes),
	}
	if _, upgraded := os.LookupEnv(envSupervisorFiles); c.Command.Name == "serve" || upgraded {
		// The supervisor resolved them, and mounted: the server must
		// not look at the mount point before it serves (a request to an
		// unserved connection waits for ever).
		return cfg, nil
	}
	if err := cfg.resolvePaths(systemdKeepsTheMount()); err != nil {
		log.Error("daemon failed", "err", err)
		return daemonConfig{}, cli.Exit("", 1)
	}
	return cfg, nil
}

// resolvePaths resolves the mount and the data dir (symbolic links too, so
// that a stale mount is recognised in /proc/self/mountinfo and a data dir
// reached through a link into the mount is refused) and picks the state
// directory. mounted: the mount is up and nobody serves it yet (systemd
// kept it): the path is not looked at, only made absolute (a request to
// an unserved connection waits for ever).
func (cfg *daemonConfig) resolvePaths(mounted bool) error {
	resolveMount := resolvePath
	if mounted {
		resolveMount = filepath.Abs
	}
	mount, err := resolveMount(cfg.mount)
	if err != nil {
		return fmt.Errorf("--mount %s: %w", cfg.mount, err)
	}
	dataDir, err := resolvePath(cfg.dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", cfg.dataDir, err)
	}
	if isWithin(dataDir, mount) {
		return fmt.Errorf("--data-dir %s lies inside --mount %s: the volume files would hide it; put the data dir elsewhere",
			describePath(cfg.dataDir, dataDir), describePath(cfg.mount, mount))
	}
	cfg.mount, cfg.dataDir = mount, dataDir
	if cfg.stateDir == "" {
		sum := sha256.Sum256([]byte(dataDir))
		cfg.stateDir = filepath.Join(defaultStateRoot, "state-"+hex.EncodeToString(sum[:6]))
	}
	if cfg.stateDir, err = filepath.Abs(cfg.stateDir); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	return nil
}

type daemonConfig struct {
	dataDir, mount, socket string
	stateDir               string
	syncInterval           time.Duration
	accountID              string
	snapshotStore          string
	localStore, outpostArn string
	// archiveStore: the archive tier's store URL ("": none); tierDay: a
	// day of a temporary restore (0: 24 hours).
	archiveStore           string
	tierDay                time.Duration
	debugFUSE              bool
	policy                 control.Policy
	volumeGroup            *uint32 // --volume-group; nil: none
	pprof                  bool
	directIO               bool // --direct-io
	keyring, region        string
	listen, credentials    string
	log                    *slog.Logger
	flushDeadline, gcGrace time.Duration
	lockDay                time.Duration // --test-lock-day; 0: EC2's day
	acceptLoss             bool
	metricsListen          string // --metrics-listen, host:port; "": off
	recycleBinDay          time.Duration
	testLifecycleMinutes   bool // lifecycle.go
}

// systemdKeepsTheMount reports whether systemd started this daemon with the
// FUSE connection from its file-descriptor store (LISTEN_FDNAMES names it):
// the mount is up and unserved until this daemon's server serves it.
func systemdKeepsTheMount() bool {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return false
	}
	return slices.Contains(strings.Split(os.Getenv("LISTEN_FDNAMES"), ":"), fdDevice)
}

// openStore opens the snapshot store url names. A store that opens with
// a warning (a full bucket) is used, and the warning logged: a full store
// must not lock the user out of reading, restoring and deleting snapshots.
func openStore(ctx context.Context, url string, log *slog.Logger) (snapstore.Store, error) {
	st, err := snapstore.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if w := snapstore.OpenWarning(st); w != nil {
		log.Warn("the snapshot store is full: starting anyway; reads, restores and deletions work, "+
			"new snapshots stay pending (retrying) until it has room", "store", st.String(), "err", w)
	}
	return st, nil
}

func validAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// listen opens the control socket and, with --listen, the TCP listener.
func listen(cfg daemonConfig) ([]net.Listener, error) {
	ln, err := control.ListenUnix(cfg.socket)
	if err != nil {
		return nil, err
	}
	if cfg.listen == "" {
		return []net.Listener{ln}, nil
	}
	tcp, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if a, ok := tcp.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		cfg.log.Warn("the TCP listener is not on loopback: SigV4 authenticates requests but does not encrypt them; put TLS in front of it",
			"listen", tcp.Addr().String())
	}
	return []net.Listener{ln, tcp}, nil
}

// prepareMountpoint creates the mount directory and clears a mount that a
// killed daemon left behind. A live mount there is refused.
//
// Staleness is tested with statfs, which FUSE always sends to its server
// (a dead one answers ENOTCONN): stat may still succeed for a while after
// the server died, from the kernel's attribute cache.
func prepareMountpoint(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil && !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	mounted, err := isMountpoint(dir)
	if err != nil || !mounted {
		return err
	}
	var st syscall.Statfs_t
	err = syscall.Statfs(dir, &st)
	if err == nil {
		return fmt.Errorf("mount point %s is already mounted (another cowvol daemon?)", dir)
	}
	if !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	log.Warn("clearing a stale FUSE mount left by a previous daemon", "mount", dir)
	if err := syscall.Unmount(dir, 0); err != nil {
		log.Warn("stale mount busy; detaching it lazily", "mount", dir, "err", err)
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("clear stale mount at %s: %w", dir, err)
		}
	}
	return nil
}

// isMountpoint reports whether dir is a mount point, from /proc/self/mountinfo.
func isMountpoint(dir string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true, nil
		}
	}
	return false, nil
}

func unescapeMountinfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// isWithin reports whether path is dir or lies below it.
func isWithin(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// minGCGrace is the shortest --gc-grace: it must cover the time between a
// flush storing an object and its manifest naming it when its lease is
// read late, and clock skew between daemons and the store.
const minGCGrace = time.Minute

func validateGCGrace(d time.Duration) error {
	if d < minGCGrace {
		return fmt.Errorf("--gc-grace %v: must be at least %v (snapshot-store garbage younger than it is kept; it covers clock skew between daemons sharing a store); the default is %v", d, minGCGrace, cow.DefaultGCGrace)
	}
	return nil
}
