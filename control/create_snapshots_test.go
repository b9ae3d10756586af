package control

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cowvol/cowvol/cow"
)

// fixedInstance is a host with a fixed instance ID and attached volumes.
type fixedInstance struct {
	id   string
	vols []string
}

func (f *fixedInstance) InstanceID() string { return f.id }
func (f *fixedInstance) AttachedVolumes(context.Context) ([]string, error) {
	return slices.Clone(f.vols), nil
}

// TestCreateSnapshots: the SDK snapshots the volumes attached to this
// host's instance (less those excluded) with the given tags and the
// volumes' own; bad input gets EC2's codes and creates nothing.
func TestCreateSnapshots(t *testing.T) {
	inst := &fixedInstance{id: "i-0123456789abcdef0"}
	env := newTestEnvWith(t, cow.Options{}, Options{Instance: inst})
	c := sdkClientOf(env)
	ctx := context.Background()
	var vols []string
	for _, name := range []string{"a", "b", "c"} {
		v, err := env.engine.CreateVolume(ctx, cow.CreateVolumeParams{Size: 1 << 30, Tags: []cow.Tag{{Key: "Name", Value: name}}})
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v.ID)
	}
	inst.vols = vols
	out, err := c.CreateSnapshots(ctx, &awsec2.CreateSnapshotsInput{
		InstanceSpecification: &types.InstanceSpecification{InstanceId: aws.String(inst.id), ExcludeBootVolume: aws.Bool(true),
			ExcludeDataVolumeIds: []string{vols[2]}},
		Description:        aws.String("set"),
		CopyTagsFromSource: types.CopyTagsFromSourceVolume,
		TagSpecifications:  []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("set"), Value: aws.String("1")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, si := range out.Snapshots {
		got = append(got, aws.ToString(si.VolumeId))
		if aws.ToString(si.Description) != "set" || si.State != types.SnapshotStatePending || len(si.Tags) != 2 || aws.ToString(si.OwnerId) != DefaultAccountID {
			t.Errorf("snapshot %+v", si)
		}
	}
	want := []string{vols[0], vols[1]}
	slices.Sort(want) // an instance's volumes come in ID order
	if !slices.Equal(got, want) {
		t.Errorf("snapshots of %v, want %v", got, want)
	}

	before, _ := env.engine.DescribeSnapshots(ctx)
	q := func(params string) string { return "Action=CreateSnapshots" + v + "&" + params }
	spec := "InstanceSpecification.InstanceId="
	for _, tc := range []struct{ body, code, msg string }{
		{q(spec + "i-00000000000000000"), CodeInvalidInstanceIDNotFound, "this host is " + inst.id},
		{q(spec + "host"), CodeInvalidInstanceIDMalformed, "host"},
		{q(spec + inst.id + "&InstanceSpecification.ExcludeDataVolumeId.1=vol-00000000000000000"), CodeInvalidParameterValue, "not attached"},
		{q(spec + inst.id + "&InstanceSpecification.ExcludeDataVolumeId.1=" + strings.Join(vols, "&InstanceSpecification.ExcludeDataVolumeId.2=")), CodeInvalidParameterValue, ""},
		{q(spec + inst.id + "&VolumeId.1=" + vols[0]), CodeMissingParameter, "not both"},
		{q(""), CodeMissingParameter, "InstanceSpecification.InstanceId"},
		{q("VolumeId.1=" + vols[0] + "&VolumeId.2=vol-00000000000000000"), CodeInvalidVolumeNotFound, "vol-00000000000000000"},
		{q("VolumeId.1=vol-x"), CodeInvalidVolumeIDMalformed, "vol-x"},
		{q("VolumeId.1=" + vols[0] + "&CopyTagsFromSource=instance"), CodeInvalidParameterValue, "CopyTagsFromSource"},
		{q("VolumeId.1=" + vols[0] + "&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=aws:x"), CodeInvalidParameterValue, "aws:"},
		{q(spec + inst.id + "&DryRun=true"), CodeDryRunOperation, ""},
		{q("VolumeId.1=" + vols[0] + "&DryRun=true"), CodeDryRunOperation, ""},
	} {
		resp, err := env.raw.Post("http://cowvol/", "application/x-www-form-urlencoded", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp)
		if !strings.Contains(b, "<Code>"+tc.code+"</Code>") || !strings.Contains(b, tc.msg) {
			t.Errorf("%s: %d %s, want %s saying %q", tc.body, resp.StatusCode, b, tc.code, tc.msg)
		}
	}
	if after, _ := env.engine.DescribeSnapshots(ctx); len(after) != len(before) {
		t.Errorf("bad input created snapshots: %d, was %d", len(after), len(before))
	}
	// The cowvol extension: volumes by ID.
	resp, err := env.raw.Post("http://cowvol/", "application/x-www-form-urlencoded", strings.NewReader(q("VolumeId.1="+vols[2])))
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(b, "<volumeId>"+vols[2]+"</volumeId>") {
		t.Errorf("VolumeId.1: %d %s", resp.StatusCode, b)
	}
}
