// Package systemd owns cowvol's side of the systemd service protocols: the
// notification socket (sd_notify: READY=1, STATUS=, STOPPING=1, RELOADING=1,
// WATCHDOG=1, EXTEND_TIMEOUT_USEC=, and the file-descriptor store: FDSTORE=1
// with the fds as SCM_RIGHTS, FDSTOREREMOVE=1), the file descriptors systemd
// hands to a starting service (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), and
// the service watchdog (WATCHDOG_USEC, WATCHDOG_PID).
//
// It exists so that the supervisor of `cowvol daemon` can give systemd the
// fds that keep volumes alive (the /dev/fuse connection, the data-dir lock,
// the control listeners) and get them back when systemd restarts it. It
// depends on the standard library and golang.org/x/sys only (a test checks
// this); it knows nothing of FUSE, the engine or the control API. Only
// cmd/cowvol imports it.
//
// Outside systemd ($NOTIFY_SOCKET unset) every Notify function is a no-op
// that returns nil, Files returns no files and WatchdogInterval reports no
// watchdog, so callers need no "under systemd?" branches.
//
// The fd store (systemd v219 and later; FDPOLL= since v246), as systemd
// implements it and as this package uses it:
//   - StoreFDs sends FDSTORE=1 and FDNAME=<name> with the fds. systemd keeps
//     a duplicate of each, up to FileDescriptorStoreMax= of them (with 0 it
//     closes them and logs why). A duplicate of an open file description it
//     already holds is not stored twice, so storing the fds it handed back
//     after a restart again is harmless.
//   - When the service is restarted (Restart=, or systemctl restart) the
//     stored fds come back to the new main process in LISTEN_FDS, named by
//     LISTEN_FDNAMES, after any socket-unit fds. They stay in the store.
//   - When the unit stops for good (inactive or failed), systemd closes them.
//   - systemd polls each stored fd for POLLHUP and POLLERR and drops it
//     when either shows; StoreFDs leaves that on (no FDPOLL=0): see StoreFDs.
package systemd
