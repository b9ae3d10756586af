package integration

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sys/unix"
)

// The AWS CLI itself, over --listen: create-tags on volumes and snapshots,
// describe-tags with filters and pages of 5, delete-tags by key and by key
// and value, bad input (51 tags, aws: keys, a 129-character key, unknown
// IDs) refused with EC2's codes and nothing changed; create-snapshots of
// this host's instance (two volumes attached to loop devices by hand),
// with ExcludeDataVolumeIds, CopyTagsFromSource and TagSpecifications,
// then aws ec2 wait snapshot-completed.
func TestAWSCLITagsAndCreateSnapshots(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)
	v1 := d.createVolume(t, "64MiB", "Name=one").VolumeId
	v2 := d.createVolume(t, "64MiB", "Name=two").VolumeId
	type tagDesc struct{ Key, Value, ResourceId, ResourceType string }
	var tags struct{ Tags []tagDesc }

	step(t, "create-tags on two volumes, describe-tags with filters and pages of 5", func(t *testing.T) {
		a.mustJSON(t, nil, "ec2", "create-tags", "--resources", v1, v2, "--tags", "Key=team,Value=storage", "Key=empty,Value=")
		a.mustJSON(t, &tags, "ec2", "describe-tags")
		if len(tags.Tags) != 6 {
			t.Fatalf("describe-tags: %+v", tags)
		}
		a.mustJSON(t, &tags, "ec2", "describe-tags", "--filters", "Name=resource-id,Values="+v2, "Name=key,Values=team,Name")
		if len(tags.Tags) != 2 || tags.Tags[0].ResourceType != "volume" {
			t.Errorf("describe-tags of %s, keys team and Name: %+v", v2, tags)
		}
		a.mustJSON(t, &tags, "ec2", "describe-tags", "--page-size", "5")
		if len(tags.Tags) != 6 {
			t.Errorf("describe-tags in pages of 5: %d tags, want 6", len(tags.Tags))
		}
		var vols struct{ Volumes []struct{ VolumeId string } }
		a.mustJSON(t, &vols, "ec2", "describe-volumes", "--filters", "Name=tag:team,Values=storage", "Name=tag-key,Values=empty")
		if len(vols.Volumes) != 2 {
			t.Errorf("describe-volumes by tag: %+v", vols)
		}
	})

	step(t, "delete-tags by key and value (a wrong value keeps the tag), then by key", func(t *testing.T) {
		a.mustJSON(t, nil, "ec2", "delete-tags", "--resources", v1, "--tags", "Key=team,Value=other", "Key=empty,Value=")
		a.mustJSON(t, &tags, "ec2", "describe-tags", "--filters", "Name=resource-id,Values="+v1)
		if len(tags.Tags) != 2 {
			t.Errorf("after delete-tags team=other and empty=: %+v", tags)
		}
		a.mustJSON(t, nil, "ec2", "delete-tags", "--resources", v1, "--tags", "Key=team")
		a.mustJSON(t, &tags, "ec2", "describe-tags", "--filters", "Name=resource-id,Values="+v1)
		if len(tags.Tags) != 1 || tags.Tags[0].Key != "Name" {
			t.Errorf("after delete-tags team: %+v", tags)
		}
	})

	step(t, "bad input: EC2's codes, nothing changed", func(t *testing.T) {
		before := a.run(t, "ec2", "describe-tags").Stdout
		var fifty []string
		for i := range 50 {
			fifty = append(fifty, fmt.Sprintf("Key=k%d,Value=v", i))
		}
		a.mustFail(t, "TagLimitExceeded", append([]string{"ec2", "create-tags", "--resources", v1, "--tags"}, fifty...)...)
		a.mustFail(t, "InvalidParameterValue", "ec2", "create-tags", "--resources", v1, "--tags", "Key=aws:owner,Value=x")
		a.mustFail(t, "InvalidParameterValue", "ec2", "create-tags", "--resources", v1, "--tags", "Key="+strings.Repeat("k", 129)+",Value=x")
		a.mustFail(t, "InvalidParameterValue", "ec2", "delete-tags", "--resources", v1, "--tags", "Key=aws:owner")
		a.mustFail(t, "InvalidVolume.NotFound", "ec2", "create-tags", "--resources", v1, "vol-00000000000000000", "--tags", "Key=a,Value=b")
		a.mustFail(t, "InvalidSnapshot.NotFound", "ec2", "create-tags", "--resources", "snap-00000000000000000", "--tags", "Key=a,Value=b")
		a.mustFail(t, "InvalidID", "ec2", "create-tags", "--resources", "ami-12345678", "--tags", "Key=a,Value=b")
		a.mustFail(t, "DryRunOperation", "ec2", "create-tags", "--resources", v1, "--tags", "Key=a,Value=b", "--dry-run")
		if after := a.run(t, "ec2", "describe-tags").Stdout; after != before {
			t.Errorf("refused requests changed the tags:\nbefore %s\nafter %s", before, after)
		}
	})

	step(t, "a read-only key may describe-tags, not create-tags, delete-tags, create-snapshots or modify-snapshot-attribute", func(t *testing.T) {
		ro := newAWSCLI(t, addr, sdkKeys[1].id, sdkKeys[1].secret)
		before := a.run(t, "ec2", "describe-tags").Stdout
		if got := ro.run(t, "ec2", "describe-tags").Stdout; got != before {
			t.Errorf("describe-tags with the read-only key: %s, want %s", got, before)
		}
		ro.mustFail(t, "UnauthorizedOperation", "ec2", "create-tags", "--resources", v1, "--tags", "Key=a,Value=b")
		ro.mustFail(t, "UnauthorizedOperation", "ec2", "delete-tags", "--resources", v1)
		ro.mustFail(t, "UnauthorizedOperation", "ec2", "create-snapshots", "--instance-specification", "InstanceId=i-00000000000000000")
		ro.mustFail(t, "UnauthorizedOperation", "ec2", "modify-snapshot-attribute", "--snapshot-id", "snap-00000000000000000",
			"--operation-type", "add", "--group-names", "all")
		if after := a.run(t, "ec2", "describe-tags").Stdout; after != before {
			t.Errorf("the read-only key changed the tags:\nbefore %s\nafter %s", before, after)
		}
	})

	step(t, "create-snapshots of this host's instance: its volumes attached to loop devices", func(t *testing.T) {
		attachLoop(t, d.volumePath(v1))
		attachLoop(t, d.volumePath(v2))
		inst := hostInstanceID(t)
		var out struct {
			Snapshots []struct {
				SnapshotId, VolumeId, State, Description string
				Tags                                     []struct{ Key, Value string }
			}
		}
		a.mustJSON(t, &out, "ec2", "create-snapshots", "--instance-specification", "InstanceId="+inst+",ExcludeBootVolume=true",
			"--description", "both", "--copy-tags-from-source", "volume",
			"--tag-specifications", "ResourceType=snapshot,Tags=[{Key=set,Value=1}]")
		if len(out.Snapshots) != 2 {
			t.Fatalf("create-snapshots: %+v", out)
		}
		var ids []string
		for _, s := range out.Snapshots {
			ids = append(ids, s.SnapshotId)
			if s.Description != "both" || len(s.Tags) < 2 {
				t.Errorf("snapshot %+v", s)
			}
		}
		a.mustJSON(t, nil, append([]string{"ec2", "wait", "snapshot-completed", "--snapshot-ids"}, ids...)...)
		a.mustJSON(t, &out, "ec2", "create-snapshots", "--instance-specification", "InstanceId="+inst+",ExcludeDataVolumeIds=["+v2+"]")
		if len(out.Snapshots) != 1 || out.Snapshots[0].VolumeId != v1 {
			t.Errorf("create-snapshots excluding %s: %+v", v2, out)
		}
		a.mustJSON(t, nil, "ec2", "wait", "snapshot-completed", "--snapshot-ids", out.Snapshots[0].SnapshotId)
		a.mustFail(t, "InvalidInstanceID.NotFound", "ec2", "create-snapshots", "--instance-specification", "InstanceId=i-00000000000000000")
		a.mustFail(t, "DryRunOperation", "ec2", "create-snapshots", "--instance-specification", "InstanceId="+inst, "--dry-run")
		a.mustJSON(t, &tags, "ec2", "describe-tags", "--filters", "Name=resource-type,Values=snapshot", "Name=key,Values=set")
		if len(tags.Tags) != 2 {
			t.Errorf("describe-tags of the snapshots' set tag: %+v", tags)
		}
	})
}

// Two volumes on loop devices (direct I/O) under a writer that writes an
// increasing counter to the first, then the same to the second, each write
// complete before the next begins. create-snapshots (by this host's
// instance, through the CLI) takes pairs meanwhile: every pair, restored,
// holds counters that agree as the writer's order allows (the second's is
// the first's or one less). The Go SDK over the socket takes pairs too.
func TestCreateSnapshotsCrossVolumeCounter(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	va := d.createVolume(t, "64MiB").VolumeId
	vb := d.createVolume(t, "64MiB").VolumeId
	la, lb := attachLoop(t, d.volumePath(va)), attachLoop(t, d.volumePath(vb))
	inst := hostInstanceID(t)

	fa, fb := openDirect(t, la.Dev), openDirect(t, lb.Dev)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := alignedBlock(4096)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				written = i - 1
				return
			default:
			}
			binary.BigEndian.PutUint64(buf, i)
			for _, f := range []*os.File{fa, fb} {
				if _, err := f.WriteAt(buf, 0); err != nil {
					t.Errorf("write counter %d: %v", i, err)
					written = i
					return
				}
			}
		}
	}()
	var pairs [][2]string
	c := sdkClient(d)
	for i := range 10 {
		if i%2 == 0 {
			var out struct {
				Snapshots []struct{ SnapshotId, VolumeId string }
			}
			d.mustJSON(t, d.mustCLI(t, "create-snapshots", "--instance-specification", "InstanceId="+inst), &out)
			bySource := map[string]string{}
			for _, s := range out.Snapshots {
				bySource[s.VolumeId] = s.SnapshotId
			}
			if len(out.Snapshots) != 2 || bySource[va] == "" || bySource[vb] == "" {
				t.Fatalf("create-snapshots: %+v", out)
			}
			pairs = append(pairs, [2]string{bySource[va], bySource[vb]})
		} else {
			out, err := c.CreateSnapshots(sdkCtx(t), &awsec2.CreateSnapshotsInput{
				InstanceSpecification: &types.InstanceSpecification{InstanceId: aws.String(inst)}})
			if err != nil || len(out.Snapshots) != 2 {
				t.Fatalf("SDK CreateSnapshots: %+v, %v", out, err)
			}
			bySource := map[string]string{}
			for _, s := range out.Snapshots {
				bySource[aws.ToString(s.VolumeId)] = aws.ToString(s.SnapshotId)
			}
			if bySource[va] == "" || bySource[vb] == "" {
				t.Fatalf("SDK CreateSnapshots of %s and %s: %+v", va, vb, bySource)
			}
			pairs = append(pairs, [2]string{bySource[va], bySource[vb]})
		}
		d.waitSnapshotCompleted(t, pairs[i][0])
		d.waitSnapshotCompleted(t, pairs[i][1])
	}
	close(stop)
	wg.Wait()
	t.Logf("the writer wrote counters 1 to %d", written)
	counter := func(snap string) uint64 {
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap), &rv)
		f, err := os.Open(d.volumePath(rv.VolumeId))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 8)
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint64(b)
	}
	// The SDK over the socket tags a pair, lists and deletes the tags,
	// and shares a snapshot.
	first := pairs[0][:]
	if _, err := c.CreateTags(sdkCtx(t), &awsec2.CreateTagsInput{Resources: first,
		Tags: []types.Tag{{Key: aws.String("pair"), Value: aws.String("0")}}}); err != nil {
		t.Fatal(err)
	}
	dt, err := c.DescribeTags(sdkCtx(t), &awsec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"pair"}}}})
	if err != nil || len(dt.Tags) != 2 || dt.Tags[0].ResourceType != types.ResourceTypeSnapshot {
		t.Errorf("SDK DescribeTags: %+v, %v", dt, err)
	}
	if _, err := c.DeleteTags(sdkCtx(t), &awsec2.DeleteTagsInput{Resources: first}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateTags(sdkCtx(t), &awsec2.CreateTagsInput{Resources: first, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("")}}})
	requireAPIError(t, "SDK CreateTags aws:x", err, "InvalidParameterValue")
	if _, err := c.ModifySnapshotAttribute(sdkCtx(t), &awsec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(first[0]),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, UserIds: []string{"111122223333"}}); err != nil {
		t.Fatal(err)
	}
	sa, err := c.DescribeSnapshotAttribute(sdkCtx(t), &awsec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(first[0]),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(sa.CreateVolumePermissions) != 1 || aws.ToString(sa.CreateVolumePermissions[0].UserId) != "111122223333" {
		t.Errorf("SDK DescribeSnapshotAttribute: %+v, %v", sa, err)
	}

	moved := 0
	for i, p := range pairs {
		a, b := counter(p[0]), counter(p[1])
		t.Logf("pair %d: counters %d and %d", i, a, b)
		if b != a && b+1 != a {
			t.Errorf("pair %d (%s, %s): counters %d and %d: not one fork point", i, p[0], p[1], a, b)
		}
		if a > 0 {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no pair caught the writer at work")
	}
}

// openDirect opens a block device for O_DIRECT writes, closed at cleanup.
func openDirect(t *testing.T, dev string) *os.File {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
