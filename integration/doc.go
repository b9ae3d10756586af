// Package integration holds cowvol's end-to-end tests: they build the real
// cowvol binary once (TestMain), start real daemons on temporary data, mount
// and socket directories, and drive them the way a user does — through the
// `cowvol` CLI, a real FUSE mount, loop devices (losetup --direct-io=on),
// mkfs.ext4, mount, fstrim and e2fsck.
//
// The package has no code outside its tests; nothing may import it.
//
// The takeover_gofuse tests check cowvol's patch of go-fuse
// (third_party/go-fuse/PATCHES.md) without the daemon: the test process
// mounts a FUSE connection itself, as a supervisor would, and runs itself
// again as the servers (runMain dispatches on COWVOL_TEST_TAKEOVER_ROLE).
//
// # Prerequisites
//
// Root, /dev/fuse, loop devices (/dev/loop-control), the tools losetup,
// mount, umount, mkfs.ext4, e2fsck and fstrim, and for the S3 tests
// (s3_test.go) the pinned MinIO binary (see cow/snapstore/miniotest; each
// test starts its own server on a loopback port and stops it by PID). Without COWVOL_REQUIRE_ROOT the
// tests skip when they are not root or /dev/fuse is missing, so a plain
// `go test ./...` as a normal user stays green. With COWVOL_REQUIRE_ROOT=1
// (what .ci/run sets) any missing prerequisite fails the test with t.Fatal;
// nothing is ever skipped silently in CI.
//
// # Running
//
//	sudo COWVOL_REQUIRE_ROOT=1 go test -count=1 -v ./integration/
//	sudo COWVOL_REQUIRE_ROOT=1 go test -count=1 -v -run TestVolumeExt4SurvivesKill9 ./integration/
//	make test    # everything, as CI runs it (.ci/run)
//
// Set COWVOL_BIN=/path/to/cowvol to test that binary instead of building one,
// and COWVOL_DAEMON_RACE=1 to build the daemon under test with -race (slower;
// the daemon's race reports then land in its log, which a failing test prints).
//
// # What the harness guarantees
//
// Everything a test attaches or mounts is undone by t.Cleanup, pass or fail,
// in the right order: cleanups run last-registered-first, so a test that
// starts a daemon, attaches a loop device and mounts ext4 on it gets
// umount, then losetup -d, then the daemon stopped by PID (SIGTERM, SIGKILL
// after a timeout) and its FUSE mount lazily unmounted if still there.
// Processes are only ever signalled by PID, never by name.
//
// The harness relies on one daemon contract: the daemon creates and listens on
// its control socket only after its FUSE mount is up, so "cowvol
// describe-volumes exits 0" means the mount is ready. After a SIGKILL the old
// mount is left disconnected and the old socket file stays behind; the daemon
// cleans both up when it starts again on the same directories.
package integration
