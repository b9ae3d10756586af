package integration

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
)

// The CLI contract these helpers assume: `cowvol [--socket PATH] <verb>
// [flags]`; on success JSON on stdout shaped like `aws ec2` output
// (PascalCase); on failure `An error occurred (Code) when calling the Op
// operation: msg` on stderr and exit status 254.
const awsErrorExit = 254

// tag is an EC2 tag as the CLI prints it.
type tag struct {
	Key   string
	Value string
}

// volume is a volume as create-volume and describe-volumes print it.
type volume struct {
	VolumeId   string
	Size       int64 // GiB, as EC2 reports it
	SizeBytes  int64
	BlockSize  int64
	State      string
	SnapshotId string
	CreateTime string
	Encrypted  bool
	KmsKeyId   string
	Tags       []tag
}

// tag returns the value of the volume's tag key.
func (v volume) tag(key string) (string, bool) {
	for _, t := range v.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// cli runs `cowvol --socket S args...` and returns what it printed and its
// exit status (-1 if it could not run or timed out). It never fails the test.
func (d *daemon) cli(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := run(cliTimeout, d.environ(), cowvolBin, append([]string{"--socket", d.Socket}, args...)...)
	t.Logf("$ cowvol %s -> exit %d%s", strings.Join(args, " "), r.Code, indentStderr(r.Stderr))
	return r.Stdout, r.Stderr, r.Code
}

// cliAs is cli run as another user (uid, gid and supplementary groups).
func (d *daemon) cliAs(t testing.TB, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := runAs(cred, cliTimeout, d.environ(), cowvolBin, append([]string{"--socket", d.Socket}, args...)...)
	t.Logf("$ (uid %d gid %d groups %v) cowvol %s -> exit %d%s", cred.Uid, cred.Gid, cred.Groups,
		strings.Join(args, " "), r.Code, indentStderr(r.Stderr))
	return r.Stdout, r.Stderr, r.Code
}

// mustCLI runs the CLI and fails the test unless it exits 0; it returns stdout.
func (d *daemon) mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	stdout, stderr, code := d.cli(t, args...)
	if code != 0 {
		t.Fatalf("cowvol %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), code, stderr, stdout)
	}
	return stdout
}

// mustJSON decodes the CLI's stdout into v, failing the test if it is not JSON.
func (d *daemon) mustJSON(t testing.TB, stdout string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("CLI output is not the expected JSON: %v\n%s", err, stdout)
	}
}

// createVolume runs `create-volume --size SIZE [--tag k=v]...` and returns the
// volume it printed, checking it has an ID of the form vol-<17 hex>.
func (d *daemon) createVolume(t testing.TB, size string, tags ...string) volume {
	t.Helper()
	args := []string{"create-volume", "--size", size}
	for _, kv := range tags {
		args = append(args, "--tag", kv)
	}
	var v volume
	d.mustJSON(t, d.mustCLI(t, args...), &v)
	if !validID("vol-", v.VolumeId) {
		t.Fatalf("create-volume printed VolumeId %q, want vol- and 17 lowercase hex digits", v.VolumeId)
	}
	return v
}

// describeVolumes runs `describe-volumes [args...]` and returns the volumes.
func (d *daemon) describeVolumes(t testing.TB, args ...string) []volume {
	t.Helper()
	var out struct{ Volumes []volume }
	d.mustJSON(t, d.mustCLI(t, append([]string{"describe-volumes"}, args...)...), &out)
	return out.Volumes
}

// describeVolume returns the one volume with this ID, failing otherwise.
func (d *daemon) describeVolume(t testing.TB, id string) volume {
	t.Helper()
	vs := d.describeVolumes(t, "--volume-ids", id)
	if len(vs) != 1 || vs[0].VolumeId != id {
		t.Fatalf("describe-volumes --volume-ids %s returned %+v", id, vs)
	}
	return vs[0]
}

// validID reports whether id is prefix followed by 17 lowercase hex digits.
func validID(prefix, id string) bool {
	hex, ok := strings.CutPrefix(id, prefix)
	if !ok || len(hex) != 17 {
		return false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func indentStderr(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return "\n\tstderr: " + strings.ReplaceAll(s, "\n", "\n\t")
}
