package integration

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
)

// Users of the access test: ids no account on the machine needs to have.
var (
	stranger   = &syscall.Credential{Uid: 4444, Gid: 4444}                         // in no allowed group
	operator   = &syscall.Credential{Uid: 1234, Gid: 1234}                         // --allow-uid 1234
	groupAdmin = &syscall.Credential{Uid: 4321, Gid: 4321, Groups: []uint32{5555}} // --allow-gid 5555, as a supplementary group
	auditor    = &syscall.Credential{Uid: 4322, Gid: 7777}                         // --read-only-gid 7777
)

// TestSocketAccessByUser runs the CLI as other users against a daemon that
// allows some of them: the kernel's word for who is calling (SO_PEERCRED)
// decides, a refused caller gets UnauthorizedOperation on every operation,
// DryRun or not, and nothing changes.
func TestSocketAccessByUser(t *testing.T) {
	d := startDaemon(t, withDaemonArgs("--allow-uid", "1234", "--allow-gid", "5555", "--read-only-gid", "7777"))
	vol := d.createVolume(t, "64MiB")
	snap := d.createSnapshot(t, vol.VolumeId, "--wait").SnapshotId

	// Every operation the daemon answers, as the CLI sends it.
	// The KMS verbs have no --dry-run (neither has aws kms), and are
	// refused as KMS refuses: AccessDeniedException.
	operations := []struct {
		args     []string
		readOnly bool
		kms      bool
	}{
		{[]string{"create-volume", "--size", "64MiB"}, false, false},
		{[]string{"create-volume", "--size", "64MiB", "--encrypted"}, false, false},
		{[]string{"describe-volumes"}, true, false},
		{[]string{"describe-volume-status"}, true, false},
		{[]string{"delete-volume", "--volume-id", vol.VolumeId}, false, false},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId}, false, false},
		{[]string{"describe-snapshots"}, true, false},
		{[]string{"delete-snapshot", "--snapshot-id", snap}, false, false},
		{[]string{"copy-snapshot", "--source-snapshot-id", snap}, false, false},
		{[]string{"create-key", "--description", "nope"}, false, true},
		{[]string{"describe-keys"}, true, true},
		{[]string{"disable-key", "--key-id", "alias/aws/ebs"}, false, true},
		{[]string{"enable-key", "--key-id", "alias/aws/ebs"}, false, true},
	}
	state := func() string {
		return d.mustCLI(t, "describe-volumes") + d.mustCLI(t, "describe-snapshots") + d.mustCLI(t, "describe-keys")
	}
	before := state()

	step(t, "a stranger is refused everything, with and without --dry-run", func(t *testing.T) {
		for _, op := range operations {
			for _, dry := range []bool{false, true} {
				if dry && op.kms {
					continue
				}
				args := op.args
				if dry {
					args = append(append([]string(nil), args...), "--dry-run")
				}
				refusal := "(UnauthorizedOperation)"
				if op.kms {
					refusal = "(AccessDeniedException)"
				}
				_, stderr, code := d.cliAs(t, stranger, args...)
				if code != 254 || !strings.Contains(stderr, refusal) || !strings.Contains(stderr, "uid 4444") {
					t.Errorf("cowvol %s as uid 4444: exit %d, %q; want 254 and %s naming uid 4444",
						strings.Join(args, " "), code, stderr, refusal)
				}
			}
		}
	})

	step(t, "an auditor (read-only group) may describe, and nothing else", func(t *testing.T) {
		for _, op := range operations {
			stdout, stderr, code := d.cliAs(t, auditor, op.args...)
			switch {
			case op.readOnly && code != 0:
				t.Errorf("cowvol %s as the auditor: exit %d %s", strings.Join(op.args, " "), code, stderr)
			case op.readOnly && !json.Valid([]byte(stdout)):
				t.Errorf("cowvol %s as the auditor printed %q", strings.Join(op.args, " "), stdout)
			case !op.readOnly && (code != 254 || !strings.Contains(stderr, "(UnauthorizedOperation)") && !strings.Contains(stderr, "(AccessDeniedException)")):
				t.Errorf("cowvol %s as the auditor: exit %d %q, want a refusal", strings.Join(op.args, " "), code, stderr)
			}
		}
		if _, stderr, code := d.cliAs(t, auditor, "describe-volumes", "--dry-run"); code != 254 || !strings.Contains(stderr, "(DryRunOperation)") {
			t.Errorf("describe-volumes --dry-run as the auditor: exit %d %q, want DryRunOperation", code, stderr)
		}
	})

	step(t, "the refusals changed nothing", func(t *testing.T) {
		if after := state(); after != before {
			t.Errorf("volumes and snapshots changed:\nbefore %s\nafter %s", before, after)
		}
	})

	for _, u := range []struct {
		who  string
		cred *syscall.Credential
	}{{"the allowed uid", operator}, {"a member of the allowed group", groupAdmin}} {
		step(t, u.who+" may do everything", func(t *testing.T) {
			if _, stderr, code := d.cliAs(t, u.cred, "create-volume", "--size", "64MiB", "--dry-run"); code != 254 || !strings.Contains(stderr, "(DryRunOperation)") {
				t.Errorf("create-volume --dry-run: exit %d %q, want DryRunOperation", code, stderr)
			}
			stdout, stderr, code := d.cliAs(t, u.cred, "create-volume", "--size", "64MiB")
			var v volume
			if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil {
				t.Fatalf("create-volume: exit %d %s", code, stderr)
			}
			if _, stderr, code := d.cliAs(t, u.cred, "create-snapshot", "--volume-id", v.VolumeId, "--wait"); code != 0 {
				t.Fatalf("create-snapshot --wait: exit %d %s", code, stderr)
			}
			var snaps struct {
				Snapshots []struct {
					SnapshotID string `json:"SnapshotId"`
				}
			}
			stdout, _, _ = d.cliAs(t, u.cred, "describe-snapshots", "--filter", "volume-id="+v.VolumeId)
			if json.Unmarshal([]byte(stdout), &snaps) != nil || len(snaps.Snapshots) != 1 {
				t.Fatalf("describe-snapshots of %s: %s", v.VolumeId, stdout)
			}
			if _, stderr, code := d.cliAs(t, u.cred, "delete-snapshot", "--snapshot-id", snaps.Snapshots[0].SnapshotID); code != 0 {
				t.Errorf("delete-snapshot: exit %d %s", code, stderr)
			}
			if _, stderr, code := d.cliAs(t, u.cred, "delete-volume", "--volume-id", v.VolumeId); code != 0 {
				t.Errorf("delete-volume: exit %d %s", code, stderr)
			}
		})
	}
}
