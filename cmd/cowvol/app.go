package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// Exit codes, as the aws CLI's.
const (
	exitFailure     = 1   // any other failure (e.g. the daemon cannot start)
	exitUsage       = 252 // bad command line
	exitAPIError    = 254 // the daemon answered an error
	exitUnreachable = 255 // the control socket cannot be reached
	exitTimeout     = 255 // the daemon did not connect or answer in time (aws: connect or read timeout)
)

// newApp builds the cowvol CLI writing to stdout and stderr. Errors are
// reported, and the process exited with the matching code, by the app
// itself (through cli.OsExiter); Run still returns the error.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                      "cowvol",
		Usage:                     "EBS-style block volumes with instant snapshots, over FUSE",
		Description:               "The global options may come before the command or after it, as aws takes them.",
		Writer:                    stdout,
		ErrWriter:                 stderr,
		Version:                   version(),
		EnableBashCompletion:      true, // the protocol the completion scripts speak (completion.go)
		DisableSliceFlagSeparator: true, // --tag k=a,b and --filter n=a,b keep their commas
		Flags:                     globalFlags(),
		// Bad global options are refused before any verb runs (and
		// again by each verb, for those given after it).
		Before: checkGlobalFlags,
		Commands: []*cli.Command{
			daemonCommand(),
			serveCommand(),
			createVolumeCommand(),
			describeVolumesCommand(),
			describeVolumeStatusCommand(),
			describeVolumeAttributeCommand(),
			deleteVolumeCommand(),
			modifyVolumeCommand(),
			describeVolumesModificationsCommand(),
			attachVolumeCommand(),
			detachVolumeCommand(),
			createSnapshotCommand(),
			createSnapshotsCommand(),
			describeSnapshotsCommand(),
			describeSnapshotAttributeCommand(),
			modifySnapshotAttributeCommand(),
			deleteSnapshotCommand(),
			lockSnapshotCommand(),
			unlockSnapshotCommand(),
			describeLockedSnapshotsCommand(),
			copySnapshotCommand(),
			listSnapshotsInRecycleBinCommand(),
			restoreSnapshotFromRecycleBinCommand(),
			rbinCommand(),
			modifySnapshotTierCommand(),
			restoreSnapshotTierCommand(),
			describeSnapshotTierStatusCommand(),
			createTagsCommand(),
			deleteTagsCommand(),
			describeTagsCommand(),
			listSnapshotBlocksCommand(),
			listChangedBlocksCommand(),
			getSnapshotBlockCommand(),
			snapshotCommand(),
			dlmCommand(),
			describeAvailabilityZonesCommand(),
			describeRegionsCommand(),
			enableFastSnapshotRestoresCommand(),
			disableFastSnapshotRestoresCommand(),
			describeFastSnapshotRestoresCommand(),
			waitCommand(),
			createKeyCommand(),
			describeKeysCommand(),
			setKeyEnabledCommand("disable-key", false),
			setKeyEnabledCommand("enable-key", true),
			statusCommand(),
			completionCommand(),
			manCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c, c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: onUsageError,
		ExitErrHandler: func(_ *cli.Context, err error) {
			if err != nil {
				cli.OsExiter(reportError(stderr, err))
			}
		},
	}
	for _, c := range app.Commands {
		switch c.Name {
		case "serve": // run by the supervisor, which gives --socket first
		case "completion", "man": // need no daemon
		case "daemon":
			withGlobalFlags(c, "socket")
		default:
			withGlobalFlags(c, "socket", "cli-connect-timeout", "cli-read-timeout", "query", "output")
			c.Before = checkGlobalFlags
		}
		setUsageErrorHandler(c)
	}
	return app
}

// setUsageErrorHandler makes cmd and its subcommands report bad command
// lines as usage errors (exit 252).
func setUsageErrorHandler(cmd *cli.Command) {
	if cmd.OnUsageError == nil {
		cmd.OnUsageError = onUsageError
	}
	for _, sub := range cmd.Subcommands {
		setUsageErrorHandler(sub)
	}
}

// checkGlobalFlags refuses bad timeouts, --query and --output.
func checkGlobalFlags(c *cli.Context) error {
	if _, err := clientOptions(c); err != nil {
		return err
	}
	_, err := readOutputOptions(c)
	return err
}

// usageError is a bad command line: reported plainly, exit 252.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return &usageError{msg: flagErrorMessage(c, err)}
}

// operationError records which EC2 operation a verb called, for the
// aws-style report of the daemon's errors.
type operationError struct {
	op  string
	err error
}

func (e *operationError) Error() string { return e.op + ": " + e.err.Error() }
func (e *operationError) Unwrap() error { return e.err }

func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &operationError{op: op, err: err}
}

// reportError writes err to w as the aws CLI would and returns the exit
// code: the one place errors become exit codes.
func reportError(w io.Writer, err error) int {
	var (
		apiErr      *control.APIError
		unreachable *control.UnreachableError
		timeout     *control.TimeoutError
		usage       *usageError
		exitCoder   cli.ExitCoder
	)
	switch {
	case errors.As(err, &apiErr):
		op := "unknown"
		var oe *operationError
		if errors.As(err, &oe) {
			op = oe.op
		}
		fmt.Fprintf(w, "An error occurred (%s) when calling the %s operation: %s\n", apiErr.Code, op, apiErr.Message)
		return exitAPIError
	case errors.As(err, &timeout):
		fmt.Fprintf(w, "cowvol: %v %s\n", timeout, timeoutAdvice(timeout))
		return exitTimeout
	case errors.As(err, &unreachable):
		fmt.Fprintf(w, "%v (is `cowvol daemon` running?)\n", unreachable)
		return exitUnreachable
	case errors.As(err, &usage):
		fmt.Fprintf(w, "cowvol: %s\n", usage.msg)
		return exitUsage
	case errors.As(err, &exitCoder):
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(w, msg)
		}
		return exitCoder.ExitCode()
	}
	fmt.Fprintf(w, "cowvol: %v\n", err)
	return exitFailure
}

// client returns a client of the daemon named by --socket, with the
// timeouts of --cli-connect-timeout and --cli-read-timeout (checked by
// checkGlobalFlags).
func client(c *cli.Context) *control.Client {
	opts, _ := clientOptions(c)
	return control.NewClientWith(globalString(c, "socket"), opts)
}

// clientOptions reads --cli-connect-timeout and --cli-read-timeout.
func clientOptions(c *cli.Context) (control.ClientOptions, error) {
	var opts control.ClientOptions
	var err error
	if opts.ConnectTimeout, err = parseTimeout("cli-connect-timeout", globalString(c, "cli-connect-timeout")); err != nil {
		return opts, err
	}
	opts.ReadTimeout, err = parseTimeout("cli-read-timeout", globalString(c, "cli-read-timeout"))
	return opts, err
}

// timeoutAdvice follows a timeout's report: which flag sets the bound,
// and what became of the request.
func timeoutAdvice(e *control.TimeoutError) string {
	if e.Connect {
		return "(--cli-connect-timeout; 0: no timeout); is `cowvol daemon` running?"
	}
	return "(--cli-read-timeout; 0: no timeout); the daemon may still carry the request out"
}

// noArgs refuses positional arguments.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("%s: unexpected argument %q", c.Command.Name, c.Args().First())
	}
	return nil
}
