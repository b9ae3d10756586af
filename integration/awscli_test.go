package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// awsCLI runs the AWS CLI itself (Debian's awscli package; COWVOL_AWS_CLI
// names another) against a daemon's --listen endpoint, with a credentials
// file and a config of its own: nothing of the user's AWS set-up is read.
type awsCLI struct {
	bin      string
	env      []string
	endpoint string
}

// newAWSCLI finds the aws CLI (skipping the test without it, unless
// COWVOL_REQUIRE_ROOT=1: then it fails) and configures it for addr with
// the access key id and secret.
func newAWSCLI(t *testing.T, addr, id, secret string) *awsCLI {
	t.Helper()
	bin := os.Getenv("COWVOL_AWS_CLI")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("aws"); err != nil {
			missingPrereq(t, "the aws CLI is not installed (apt-get install awscli; make prereqs installs it)")
		}
	}
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	config := filepath.Join(dir, "config")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = "+id+"\naws_secret_access_key = "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte("[default]\nregion = us-east-1\noutput = json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+dir, "AWS_CONFIG_FILE="+config, "AWS_SHARED_CREDENTIALS_FILE="+creds,
		"AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1", "AWS_RETRY_MODE=standard")
	a := &awsCLI{bin: bin, env: env, endpoint: "http://" + addr}
	r := run(cmdTimeout, env, bin, "--version")
	t.Logf("$ aws --version -> %s", strings.TrimSpace(r.Stdout+r.Stderr))
	return a
}

// run runs `aws SERVICE ARGS --endpoint-url E --region us-east-1`.
func (a *awsCLI) run(t *testing.T, args ...string) result {
	t.Helper()
	full := append(append([]string(nil), args...), "--endpoint-url", a.endpoint, "--region", "us-east-1")
	r := run(cmdTimeout, a.env, a.bin, full...)
	t.Logf("$ aws %s -> exit %d%s", strings.Join(args, " "), r.Code, indentStderr(lastLines(r.Stderr, 3)))
	return r
}

// mustJSON runs the aws CLI, fails the test unless it exits 0, and decodes
// its output into v (if not nil).
func (a *awsCLI) mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := a.run(t, args...)
	if r.Code != 0 {
		t.Fatalf("aws %s: %v", strings.Join(args, " "), r)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
			t.Fatalf("aws %s printed no JSON: %v\n%s", strings.Join(args, " "), err, r.Stdout)
		}
	}
}

// mustFail runs the aws CLI and fails the test unless it reports the EC2
// (or KMS) error code, as aws reports service errors: "An error occurred
// (CODE) when calling the OP operation", exit 254 (aws v2) or 255 (v1).
func (a *awsCLI) mustFail(t *testing.T, code string, args ...string) result {
	t.Helper()
	r := a.run(t, args...)
	if (r.Code != 254 && r.Code != 255) || !strings.Contains(r.Stderr, "An error occurred ("+code+")") {
		t.Errorf("aws %s: %v; want error %s", strings.Join(args, " "), r, code)
	}
	return r
}

// concurrently runs the same aws command twice at once, with --debug, and
// returns both results and whether both carried the same SigV4 signature:
// the same request, signed in the same second.
func (a *awsCLI) concurrently(t *testing.T, args ...string) (r1, r2 result, same bool) {
	t.Helper()
	var wg sync.WaitGroup
	var rs [2]result
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			full := append(append([]string(nil), args...), "--endpoint-url", a.endpoint, "--region", "us-east-1", "--debug")
			rs[i] = run(cmdTimeout, a.env, a.bin, full...)
		}()
	}
	wg.Wait()
	s1, s2 := signatureOf(rs[0].Stderr), signatureOf(rs[1].Stderr)
	t.Logf("$ aws %s (twice at once) -> exit %d and %d, signatures %.12s and %.12s", strings.Join(args, " "), rs[0].Code, rs[1].Code, s1, s2)
	return rs[0], rs[1], s1 != "" && s1 == s2
}

// sigV4Signature finds the signature botocore logs with --debug.
var sigV4Signature = regexp.MustCompile(`Signature=([0-9a-f]{64})`)

func signatureOf(debug string) string {
	m := sigV4Signature.FindAllStringSubmatch(debug, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

// The AWS CLI itself, unmodified, drives every EC2 call cowvol answers,
// over --listen with SigV4: volumes, describe-volumes and describe-snapshots
// with the CLI's paging defaults (MaxResults=1000), describe-volume-status,
// snapshots and `aws ec2 wait snapshot-completed`, the same request twice
// within a second (no false replay), a snapshot deleted twice at once (one
// success, one InvalidSnapshot.NotFound), copy-snapshot, zones, regions,
// the attribute calls, and the KMS calls with `aws kms`. Bad input for the
// new calls gets EC2's codes and changes nothing.
func TestAWSCLIDrivesCowvol(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)

	var vol, volFromSnap, snap, copied string
	step(t, "aws ec2 create-volume in the daemon's zone", func(t *testing.T) {
		var v struct{ VolumeId, AvailabilityZone, State string }
		a.mustJSON(t, &v, "ec2", "create-volume", "--size", "1", "--availability-zone", "us-east-1a",
			"--tag-specifications", "ResourceType=volume,Tags=[{Key=team,Value=awscli}]")
		if !validID("vol-", v.VolumeId) || v.AvailabilityZone != "us-east-1a" || v.State != "available" {
			t.Fatalf("create-volume printed %+v", v)
		}
		vol = v.VolumeId
	})

	step(t, "describe-volumes and describe-volume-status with no arguments (the CLI's paging defaults)", func(t *testing.T) {
		var out struct{ Volumes []struct{ VolumeId string } }
		a.mustJSON(t, &out, "ec2", "describe-volumes")
		if len(out.Volumes) != 1 || out.Volumes[0].VolumeId != vol {
			t.Errorf("describe-volumes: %+v", out)
		}
		a.mustJSON(t, &out, "ec2", "describe-volumes", "--filters", "Name=tag:team,Values=awscli")
		if len(out.Volumes) != 1 {
			t.Errorf("describe-volumes --filters tag:team=awscli: %+v", out)
		}
		var st struct {
			VolumeStatuses []struct {
				VolumeId     string
				VolumeStatus struct{ Status string }
			}
		}
		a.mustJSON(t, &st, "ec2", "describe-volume-status")
		if len(st.VolumeStatuses) != 1 || st.VolumeStatuses[0].VolumeStatus.Status != "ok" {
			t.Errorf("describe-volume-status: %+v", st)
		}
		a.mustJSON(t, nil, "ec2", "describe-volumes", "--page-size", "5")
	})

	step(t, "create-snapshot, then aws ec2 wait snapshot-completed", func(t *testing.T) {
		var s struct{ SnapshotId, VolumeId, State string }
		a.mustJSON(t, &s, "ec2", "create-snapshot", "--volume-id", vol, "--description", "awscli")
		if !validID("snap-", s.SnapshotId) || s.VolumeId != vol {
			t.Fatalf("create-snapshot printed %+v", s)
		}
		snap = s.SnapshotId
		a.mustJSON(t, nil, "ec2", "wait", "snapshot-completed", "--snapshot-ids", snap)
		var out struct {
			Snapshots []struct{ SnapshotId, State, Progress, OwnerId string }
		}
		a.mustJSON(t, &out, "ec2", "describe-snapshots")
		if len(out.Snapshots) != 1 || out.Snapshots[0].State != "completed" || out.Snapshots[0].OwnerId != sdkAccountID {
			t.Errorf("describe-snapshots after the waiter: %+v", out)
		}
		a.mustJSON(t, &out, "ec2", "describe-snapshots", "--owner-ids", "self")
		if len(out.Snapshots) != 1 {
			t.Errorf("describe-snapshots --owner-ids self: %+v", out)
		}
	})

	step(t, "the same describe twice within one second: both answered", func(t *testing.T) {
		for attempt := 1; ; attempt++ {
			r1, r2, same := a.concurrently(t, "ec2", "describe-snapshots", "--snapshot-ids", snap)
			if r1.Code != 0 || r2.Code != 0 {
				t.Fatalf("the same describe-snapshots twice at once: exit %d and %d\n%s\n%s", r1.Code, r2.Code,
					lastLines(r1.Stderr, 3), lastLines(r2.Stderr, 3))
			}
			if same {
				break
			}
			if attempt == 10 {
				t.Fatal("10 pairs of runs never signed in the same second")
			}
		}
	})

	step(t, "create-volume from the snapshot", func(t *testing.T) {
		var v struct{ VolumeId, SnapshotId string }
		a.mustJSON(t, &v, "ec2", "create-volume", "--snapshot-id", snap, "--availability-zone", "us-east-1a")
		if v.SnapshotId != snap || !validID("vol-", v.VolumeId) {
			t.Fatalf("create-volume --snapshot-id printed %+v", v)
		}
		volFromSnap = v.VolumeId
	})

	step(t, "copy-snapshot (the CLI adds PresignedUrl and DestinationRegion)", func(t *testing.T) {
		var c struct{ SnapshotId string }
		a.mustJSON(t, &c, "ec2", "copy-snapshot", "--source-region", "us-east-1", "--source-snapshot-id", snap, "--description", "copy")
		if !validID("snap-", c.SnapshotId) {
			t.Fatalf("copy-snapshot printed %+v", c)
		}
		copied = c.SnapshotId
		a.mustJSON(t, nil, "ec2", "wait", "snapshot-completed", "--snapshot-ids", copied)
	})

	step(t, "zones, regions and attributes", func(t *testing.T) {
		var z struct {
			AvailabilityZones []struct{ ZoneName, ZoneId, RegionName, State string }
		}
		a.mustJSON(t, &z, "ec2", "describe-availability-zones")
		if len(z.AvailabilityZones) != 1 || z.AvailabilityZones[0].ZoneName != "us-east-1a" || z.AvailabilityZones[0].ZoneId != "use1-az1" ||
			z.AvailabilityZones[0].State != "available" {
			t.Errorf("describe-availability-zones: %+v", z)
		}
		a.mustJSON(t, &z, "ec2", "describe-availability-zones", "--zone-names", "us-east-1a", "--filters", "Name=state,Values=available")
		if len(z.AvailabilityZones) != 1 {
			t.Errorf("describe-availability-zones --zone-names us-east-1a: %+v", z)
		}
		var r struct {
			Regions []struct{ RegionName, Endpoint string }
		}
		a.mustJSON(t, &r, "ec2", "describe-regions", "--all-regions")
		if len(r.Regions) != 1 || r.Regions[0].RegionName != "us-east-1" || r.Regions[0].Endpoint != addr {
			t.Errorf("describe-regions: %+v", r)
		}
		var va struct {
			VolumeId     string
			AutoEnableIO struct{ Value bool }
		}
		a.mustJSON(t, &va, "ec2", "describe-volume-attribute", "--volume-id", vol, "--attribute", "autoEnableIO")
		if va.VolumeId != vol || !va.AutoEnableIO.Value {
			t.Errorf("describe-volume-attribute autoEnableIO: %+v", va)
		}
		var pc struct{ ProductCodes []any }
		a.mustJSON(t, &pc, "ec2", "describe-volume-attribute", "--volume-id", vol, "--attribute", "productCodes")
		if pc.ProductCodes == nil || len(pc.ProductCodes) != 0 {
			t.Errorf("describe-volume-attribute productCodes: %+v", pc)
		}
		var sa struct {
			SnapshotId              string
			CreateVolumePermissions []any
		}
		a.mustJSON(t, &sa, "ec2", "describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission")
		if sa.SnapshotId != snap || sa.CreateVolumePermissions == nil || len(sa.CreateVolumePermissions) != 0 {
			t.Errorf("describe-snapshot-attribute createVolumePermission: %+v", sa)
		}
		a.mustJSON(t, nil, "ec2", "modify-snapshot-attribute", "--snapshot-id", snap,
			"--attribute", "createVolumePermission", "--operation-type", "add", "--user-ids", "111122223333")
		var shared struct {
			CreateVolumePermissions []struct{ UserId, Group string }
		}
		a.mustJSON(t, &shared, "ec2", "describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission")
		if len(shared.CreateVolumePermissions) != 1 || shared.CreateVolumePermissions[0].UserId != "111122223333" {
			t.Errorf("describe-snapshot-attribute after modify-snapshot-attribute: %+v", shared)
		}
		a.mustJSON(t, nil, "ec2", "modify-snapshot-attribute", "--snapshot-id", snap,
			"--create-volume-permission", "Remove=[{UserId=111122223333}]")
		a.mustJSON(t, &shared, "ec2", "describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission")
		if len(shared.CreateVolumePermissions) != 0 {
			t.Errorf("describe-snapshot-attribute after the removal: %+v", shared)
		}
	})

	step(t, "bad input for the new calls: EC2's codes, nothing changed", func(t *testing.T) {
		before := d.mustCLI(t, "describe-volumes") + d.mustCLI(t, "describe-snapshots")
		a.mustFail(t, "InvalidParameterValue", "ec2", "describe-availability-zones", "--zone-names", "us-east-1b")
		a.mustFail(t, "InvalidParameterValue", "ec2", "describe-availability-zones", "--filters", "Name=size,Values=1")
		a.mustFail(t, "InvalidParameterValue", "ec2", "describe-regions", "--region-names", "eu-west-1")
		a.mustFail(t, "InvalidParameterValue", "ec2", "describe-volume-attribute", "--volume-id", vol, "--attribute", "iops")
		a.mustFail(t, "InvalidVolume.NotFound", "ec2", "describe-volume-attribute", "--volume-id", "vol-00000000000000000", "--attribute", "autoEnableIO")
		a.mustFail(t, "InvalidSnapshot.NotFound", "ec2", "describe-snapshot-attribute", "--snapshot-id", "snap-00000000000000000", "--attribute", "productCodes")
		a.mustFail(t, "InvalidSnapshotID.Malformed", "ec2", "modify-snapshot-attribute", "--snapshot-id", "snap-x", "--operation-type", "add", "--group-names", "all")
		a.mustFail(t, "InvalidParameterValue", "ec2", "modify-snapshot-attribute", "--snapshot-id", snap, "--operation-type", "add", "--user-ids", "12")
		a.mustFail(t, "InvalidParameterValue", "ec2", "create-volume", "--size", "1", "--availability-zone", "local")
		a.mustFail(t, "DryRunOperation", "ec2", "describe-regions", "--dry-run")
		if after := d.mustCLI(t, "describe-volumes") + d.mustCLI(t, "describe-snapshots"); after != before {
			t.Errorf("refused requests changed volumes or snapshots:\nbefore %s\nafter %s", before, after)
		}
	})

	step(t, "delete-snapshot twice at once: one deletes, the other gets InvalidSnapshot.NotFound", func(t *testing.T) {
		r1, r2, same := a.concurrently(t, "ec2", "delete-snapshot", "--snapshot-id", copied)
		ok, notFound := 0, 0
		for _, r := range []result{r1, r2} {
			switch {
			case r.Code == 0:
				ok++
			case strings.Contains(r.Stderr, "An error occurred (InvalidSnapshot.NotFound)"):
				notFound++
			default:
				t.Errorf("delete-snapshot: exit %d: %s", r.Code, lastLines(r.Stderr, 3))
			}
		}
		if ok != 1 || notFound != 1 {
			t.Errorf("delete-snapshot twice at once (same signature: %v): %d deleted, %d InvalidSnapshot.NotFound; want one of each", same, ok, notFound)
		}
		a.mustFail(t, "InvalidSnapshot.NotFound", "ec2", "delete-snapshot", "--snapshot-id", copied)
	})

	step(t, "aws kms: create-key, create-alias, describe-key, list-keys, list-aliases, disable-key, enable-key, get-key-policy", func(t *testing.T) {
		var k struct {
			KeyMetadata struct{ KeyId, Arn, KeyState string }
		}
		a.mustJSON(t, &k, "kms", "create-key", "--description", "awscli")
		if k.KeyMetadata.KeyId == "" || k.KeyMetadata.KeyState != "Enabled" {
			t.Fatalf("kms create-key: %+v", k)
		}
		id := k.KeyMetadata.KeyId
		a.mustJSON(t, nil, "kms", "create-alias", "--alias-name", "alias/awscli", "--target-key-id", id)
		a.mustJSON(t, &k, "kms", "describe-key", "--key-id", "alias/awscli")
		if k.KeyMetadata.KeyId != id {
			t.Errorf("kms describe-key alias/awscli: %+v", k)
		}
		var keys struct{ Keys []struct{ KeyId string } }
		a.mustJSON(t, &keys, "kms", "list-keys")
		found := false
		for _, key := range keys.Keys {
			found = found || key.KeyId == id
		}
		if !found {
			t.Errorf("kms list-keys: %+v lacks %s", keys, id)
		}
		a.mustJSON(t, nil, "kms", "list-aliases")
		a.mustJSON(t, nil, "kms", "disable-key", "--key-id", id)
		a.mustJSON(t, &k, "kms", "describe-key", "--key-id", id)
		if k.KeyMetadata.KeyState != "Disabled" {
			t.Errorf("after disable-key: %+v", k)
		}
		a.mustJSON(t, nil, "kms", "enable-key", "--key-id", id)
		a.mustJSON(t, nil, "kms", "get-key-policy", "--key-id", id, "--policy-name", "default")
	})

	step(t, "delete-snapshot, delete-volume", func(t *testing.T) {
		a.mustJSON(t, nil, "ec2", "delete-snapshot", "--snapshot-id", snap)
		for _, v := range []string{volFromSnap, vol} {
			a.mustJSON(t, nil, "ec2", "delete-volume", "--volume-id", v)
		}
		a.mustFail(t, "InvalidVolume.NotFound", "ec2", "delete-volume", "--volume-id", vol)
		var out struct{ Volumes []any }
		a.mustJSON(t, &out, "ec2", "describe-volumes")
		if len(out.Volumes) != 0 {
			t.Errorf("describe-volumes after deleting both: %+v", out)
		}
	})
}
