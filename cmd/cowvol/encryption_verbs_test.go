package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestEncryptionVerbs: a user's session with encrypted volumes through the
// CLI: a key, an encrypted volume under it, its snapshot and a copy with
// their lineages, and the errors for bad key parameters and a disabled key.
func TestEncryptionVerbs(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}
	decode := func(out string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return m
	}
	key := decode(runOK(t, append(s, "create-key", "--description", "db", "--alias", "alias/db")...))
	arn := key["KeyMetadata"].(map[string]any)["Arn"].(string)

	vol := decode(runOK(t, append(s, "create-volume", "--size", "1GiB", "--encrypted", "--kms-key-id", "alias/db")...))
	if vol["Encrypted"] != true || vol["KmsKeyId"] != arn {
		t.Fatalf("create-volume --encrypted --kms-key-id alias/db: %v", vol)
	}
	snap := decode(runOK(t, append(s, "create-snapshot", "--volume-id", vol["VolumeId"].(string))...))
	snapID := snap["SnapshotId"].(string)
	if snap["Encrypted"] != true || snap["KmsKeyId"] != arn {
		t.Fatalf("create-snapshot of an encrypted volume: %v", snap)
	}
	waitOK(t, sock, snapID)
	desc := decode(runOK(t, append(s, "describe-snapshots", "--snapshot-ids", snapID)...))
	got := desc["Snapshots"].([]any)[0].(map[string]any)
	if got["Encrypted"] != true || got["KmsKeyId"] != arn || got["SseType"] != "sse-kms" || got["DataEncryptionKeyId"] == nil {
		t.Fatalf("describe-snapshots of an encrypted snapshot: %v", got)
	}
	lineage := got["DataEncryptionKeyId"]

	cp := decode(runOK(t, append(s, "copy-snapshot", "--source-snapshot-id", snapID, "--description", "offsite", "--tag", "copy=yes")...))
	cpID := cp["SnapshotId"].(string)
	waitOK(t, sock, cpID)
	desc = decode(runOK(t, append(s, "describe-snapshots", "--snapshot-ids", cpID)...))
	got = desc["Snapshots"].([]any)[0].(map[string]any)
	if got["Encrypted"] != true || got["KmsKeyId"] != arn || got["DataEncryptionKeyId"] == lineage || got["VolumeId"] != "vol-ffffffff" {
		t.Fatalf("describe-snapshots of the copy: %v (source lineage %v)", got, lineage)
	}
	from := decode(runOK(t, append(s, "create-volume", "--snapshot-id", cpID)...))
	if from["Encrypted"] != true {
		t.Fatalf("a volume from an encrypted copy: %v", from)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"KMS key without --encrypted", []string{"create-volume", "--size", "1", "--kms-key-id", "alias/db"}, "(InvalidParameterDependency)"},
		{"no such KMS key", []string{"create-volume", "--size", "1", "--encrypted", "--kms-key-id", "alias/nope"}, "(InvalidKMSKey.NotFound)"},
		{"another key for an encrypted snapshot", []string{"create-volume", "--snapshot-id", snapID, "--kms-key-id", "alias/aws/ebs"}, "(InvalidParameterValue)"},
		{"copy from another region", []string{"copy-snapshot", "--source-snapshot-id", snapID, "--source-region", "eu-west-1"}, "(InvalidParameterValue)"},
		{"copy without a source", []string{"copy-snapshot"}, "--source-snapshot-id is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, append(s, tt.args...)...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("cowvol %v: exit %d, stderr %q; want %q", tt.args, code, errOut, tt.want)
			}
		})
	}

	// The key disabled: its snapshots can be restored no more, and say why.
	runOK(t, append(s, "disable-key", "--key-id", "alias/db")...)
	_, errOut, code := run(t, append(s, "create-volume", "--snapshot-id", snapID)...)
	if code != 254 || !strings.Contains(errOut, "(InvalidKMSKey.InvalidState)") || !strings.Contains(errOut, arn) {
		t.Fatalf("create-volume from a snapshot whose key is disabled: exit %d, %q", code, errOut)
	}
	runOK(t, append(s, "enable-key", "--key-id", "alias/db")...)
	runOK(t, append(s, "create-volume", "--snapshot-id", snapID)...)
}

// waitOK waits for snapshot id to complete (the waiter's progress goes to
// stderr).
func waitOK(t *testing.T, sock, id string) {
	t.Helper()
	if _, errOut, code := run(t, "--socket", sock, "wait", "snapshot-completed", "--snapshot-ids", id); code != 0 {
		t.Fatalf("wait snapshot-completed %s: exit %d, %s", id, code, errOut)
	}
}
