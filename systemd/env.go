package systemd

import (
	"slices"
	"strings"
)

// serviceVars are the variables by which systemd addresses the process it
// started: its notification socket, its watchdog, the fds it passed. The
// FDSTORE variable (systemd 254+: the store's size) is left to children,
// being only information.
var serviceVars = []string{
	EnvNotifySocket,
	EnvWatchdogUSec, EnvWatchdogPID,
	EnvListenPID, EnvListenFDs, EnvListenFDNames,
}

// ChildEnv returns environ (as os.Environ returns it) without the
// variables that address this process's service manager: NOTIFY_SOCKET,
// WATCHDOG_USEC, WATCHDOG_PID, LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES. Use
// it for the environment of a process the supervisor starts (the serving
// child, a helper): under NotifyAccess=main systemd would refuse, and log,
// every message the child sent, and the watchdog and the passed fds are
// the supervisor's. A re-executed supervisor keeps the same pid and keeps
// os.Environ() instead.
func ChildEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(serviceVars, name) {
			out = append(out, kv)
		}
	}
	return out
}
