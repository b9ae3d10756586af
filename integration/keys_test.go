package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyringByCLI: a user's session with the key verbs. Keys live in the
// daemon's private keyring, survive a restart, and follow the socket's
// access policy.
func TestKeyringByCLI(t *testing.T) {
	d := startDaemon(t, withDaemonArgs("--read-only-gid", "7777", "--account-id", "123456789012"))
	type keyJSON struct {
		KeyId, Arn, Description, KeyState string
		Aliases                           []string
		Enabled                           bool
	}
	var created struct{ KeyMetadata keyJSON }

	step(t, "create a key with an alias", func(t *testing.T) {
		d.mustJSON(t, d.mustCLI(t, "create-key", "--description", "db volumes", "--alias", "alias/db"), &created)
		k := created.KeyMetadata
		if !strings.HasPrefix(k.Arn, "arn:aws:kms:us-east-1:123456789012:key/"+k.KeyId) || !k.Enabled ||
			k.KeyState != "Enabled" || k.Description != "db volumes" || len(k.Aliases) != 1 || k.Aliases[0] != "alias/db" {
			t.Errorf("create-key printed %+v", k)
		}
		fi, err := os.Stat(d.Keyring)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("keyring %s: %v %v, want a 0700 directory", d.Keyring, fi, err)
		}
		files, _ := filepath.Glob(filepath.Join(d.Keyring, "*"))
		for _, f := range files {
			if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
			}
		}
	})

	step(t, "disable it; after a restart it is still disabled, and can be enabled", func(t *testing.T) {
		d.mustCLI(t, "disable-key", "--key-id", "alias/db")
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		d.restart(t)
		var out struct{ Keys []keyJSON }
		d.mustJSON(t, d.mustCLI(t, "describe-keys", "--key-ids", created.KeyMetadata.Arn), &out)
		if len(out.Keys) != 1 || out.Keys[0].Enabled || out.Keys[0].KeyState != "Disabled" {
			t.Errorf("after disable-key and a restart: %+v", out.Keys)
		}
		d.mustCLI(t, "enable-key", "--key-id", created.KeyMetadata.KeyId)
		d.mustJSON(t, d.mustCLI(t, "describe-keys"), &out)
		if len(out.Keys) != 1 || !out.Keys[0].Enabled {
			t.Errorf("after enable-key: %+v", out.Keys)
		}
	})

	step(t, "errors read as aws's, and the read-only group may only look", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"describe-keys", "--key-ids", "alias/none"}, 254, "(NotFoundException) when calling the DescribeKey operation"},
			{[]string{"create-key", "--alias", "alias/db"}, 254, "(AlreadyExistsException)"},
			{[]string{"disable-key"}, 252, "--key-id is required"},
		} {
			_, stderr, code := d.cli(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("cowvol %s: exit %d %q, want %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
			}
		}
		if _, stderr, code := d.cliAs(t, auditor, "describe-keys"); code != 0 {
			t.Errorf("describe-keys as the auditor: exit %d %s", code, stderr)
		}
		if _, stderr, code := d.cliAs(t, auditor, "disable-key", "--key-id", "alias/db"); code != 254 || !strings.Contains(stderr, "(AccessDeniedException)") {
			t.Errorf("disable-key as the auditor: exit %d %q, want AccessDeniedException", code, stderr)
		}
		if _, stderr, code := d.cliAs(t, stranger, "describe-keys"); code != 254 || !strings.Contains(stderr, "(AccessDeniedException)") {
			t.Errorf("describe-keys as a stranger: exit %d %q", code, stderr)
		}
		var out struct{ Keys []keyJSON }
		d.mustJSON(t, d.mustCLI(t, "describe-keys"), &out)
		if len(out.Keys) != 1 {
			t.Errorf("after the refusals there are %d keys, want 1: %+v", len(out.Keys), out.Keys)
		}
	})
}
