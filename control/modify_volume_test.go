package control

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestModifyVolumeWithSDK: the AWS SDK grows a volume over the socket and
// reads the modification back; bad input gets EC2's codes and changes
// nothing.
func TestModifyVolumeWithSDK(t *testing.T) {
	env := newTestEnv(t)
	c := sdkClientOf(env)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	other := env.create(t, CreateVolumeInput{Size: 2})

	bad := []struct {
		name string
		in   awsec2.ModifyVolumeInput
		code string
	}{
		{"shrink", awsec2.ModifyVolumeInput{VolumeId: aws.String(other.VolumeID), Size: aws.Int32(1)}, CodeInvalidParameterValue},
		{"nothing changes", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(1)}, CodeInvalidParameterValue},
		{"no size", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), VolumeType: types.VolumeTypeStandard}, CodeInvalidParameterValue},
		{"gp3", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(2), VolumeType: types.VolumeTypeGp3}, CodeInvalidParameterValue},
		{"iops", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(2), Iops: aws.Int32(3000)}, CodeInvalidParameterCombination},
		{"throughput", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(2), Throughput: aws.Int32(125)}, CodeInvalidParameterCombination},
		{"multi-attach", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(2), MultiAttachEnabled: aws.Bool(true)}, CodeInvalidParameterCombination},
		{"too large", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(65537)}, CodeInvalidParameterValue},
		{"unknown volume", awsec2.ModifyVolumeInput{VolumeId: aws.String("vol-0123456789abcdef0"), Size: aws.Int32(2)}, CodeInvalidVolumeNotFound},
		{"malformed id", awsec2.ModifyVolumeInput{VolumeId: aws.String("volume-1"), Size: aws.Int32(2)}, CodeInvalidVolumeIDMalformed},
		{"dry run", awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(2), DryRun: aws.Bool(true)}, CodeDryRunOperation},
	}
	for _, tt := range bad {
		if _, err := c.ModifyVolume(ctx, &tt.in); sdkCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if mods, err := c.DescribeVolumesModifications(ctx, &awsec2.DescribeVolumesModificationsInput{}); err != nil || len(mods.VolumesModifications) != 0 {
		t.Fatalf("after refused modifications: %+v, %v", mods, err)
	}
	if _, err := c.DescribeVolumesModifications(ctx, &awsec2.DescribeVolumesModificationsInput{VolumeIds: []string{vol.VolumeID}}); sdkCode(err) != CodeInvalidVolumeModificationNotFound {
		t.Fatalf("modifications of a volume never modified: %v", err)
	}

	out, err := c.ModifyVolume(ctx, &awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeID), Size: aws.Int32(3), VolumeType: types.VolumeTypeStandard})
	if err != nil {
		t.Fatal(err)
	}
	m := out.VolumeModification
	if m.ModificationState != types.VolumeModificationStateModifying || aws.ToInt32(m.OriginalSize) != 1 || aws.ToInt32(m.TargetSize) != 3 ||
		aws.ToInt64(m.Progress) != 0 || m.StartTime == nil || m.EndTime != nil || m.TargetVolumeType != types.VolumeTypeStandard {
		t.Fatalf("ModifyVolume answered %+v", m)
	}
	mods, err := c.DescribeVolumesModifications(ctx, &awsec2.DescribeVolumesModificationsInput{VolumeIds: []string{vol.VolumeID}})
	if err != nil || len(mods.VolumesModifications) != 1 {
		t.Fatalf("DescribeVolumesModifications: %+v, %v", mods, err)
	}
	d := mods.VolumesModifications[0]
	if d.ModificationState != types.VolumeModificationStateCompleted || aws.ToInt64(d.Progress) != 100 || d.EndTime == nil ||
		d.EndTime.Before(*d.StartTime) || aws.ToInt32(d.TargetSize) != 3 {
		t.Fatalf("modification described as %+v", d)
	}
	vols, err := c.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{vol.VolumeID}})
	if err != nil || aws.ToInt32(vols.Volumes[0].Size) != 3 {
		t.Fatalf("DescribeVolumes after the grow: %+v, %v", vols, err)
	}
	// Filters.
	for filter, want := range map[string]int{"completed": 1, "modifying": 0} {
		got, err := c.DescribeVolumesModifications(ctx, &awsec2.DescribeVolumesModificationsInput{
			Filters: []types.Filter{{Name: aws.String("modification-state"), Values: []string{filter}}}})
		if err != nil || len(got.VolumesModifications) != want {
			t.Errorf("modification-state=%s: %+v, %v", filter, got, err)
		}
	}
}
