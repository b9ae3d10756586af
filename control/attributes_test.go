package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
)

// TestAttributes: the SDK reads a volume's autoEnableIO and productCodes
// and a snapshot's createVolumePermission and productCodes; sharing a
// snapshot (add, remove; a dry run changes nothing) shows in
// DescribeSnapshotAttribute and RestorableBy; bad input gets EC2's codes.
func TestAttributes(t *testing.T) {
	env := newTestEnv(t)
	c := sdkClientOf(env)
	ctx := context.Background()
	vol, err := env.engine.CreateVolume(ctx, cow.CreateVolumeParams{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := env.engine.CreateSnapshot(ctx, cow.CreateSnapshotParams{VolumeID: vol.ID})
	if err != nil {
		t.Fatal(err)
	}

	va, err := c.DescribeVolumeAttribute(ctx, &awsec2.DescribeVolumeAttributeInput{VolumeId: aws.String(vol.ID), Attribute: types.VolumeAttributeNameAutoEnableIO})
	if err != nil || aws.ToString(va.VolumeId) != vol.ID || va.AutoEnableIO == nil || !aws.ToBool(va.AutoEnableIO.Value) || va.ProductCodes != nil {
		t.Errorf("autoEnableIO: %+v, %v; want true, no productCodes", va, err)
	}
	va, err = c.DescribeVolumeAttribute(ctx, &awsec2.DescribeVolumeAttributeInput{VolumeId: aws.String(vol.ID), Attribute: types.VolumeAttributeNameProductCodes})
	if err != nil || va.ProductCodes == nil || len(va.ProductCodes) != 0 || va.AutoEnableIO != nil {
		t.Errorf("volume productCodes: %+v, %v; want an empty list", va, err)
	}
	sa, err := c.DescribeSnapshotAttribute(ctx, &awsec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap.ID), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || aws.ToString(sa.SnapshotId) != snap.ID || sa.CreateVolumePermissions == nil || len(sa.CreateVolumePermissions) != 0 || sa.ProductCodes != nil {
		t.Errorf("createVolumePermission: %+v, %v; want an empty list", sa, err)
	}
	sa, err = c.DescribeSnapshotAttribute(ctx, &awsec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap.ID), Attribute: types.SnapshotAttributeNameProductCodes})
	if err != nil || sa.ProductCodes == nil || len(sa.ProductCodes) != 0 || sa.CreateVolumePermissions != nil {
		t.Errorf("snapshot productCodes: %+v, %v; want an empty list", sa, err)
	}

	share := &awsec2.ModifySnapshotAttributeInput{
		SnapshotId: aws.String(snap.ID),
		Attribute:  types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{
			Add: []types.CreateVolumePermission{{UserId: aws.String("111122223333")}},
		},
	}
	// A dry run changes nothing; the call stores the grant, which
	// DescribeSnapshotAttribute and RestorableBy then show.
	share.DryRun = aws.Bool(true)
	_, err = c.ModifySnapshotAttribute(ctx, share)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != CodeDryRunOperation {
		t.Errorf("ModifySnapshotAttribute (DryRun): %v, want DryRunOperation", err)
	}
	sa, err = c.DescribeSnapshotAttribute(ctx, &awsec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap.ID), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(sa.CreateVolumePermissions) != 0 {
		t.Errorf("after the dry run: %+v, %v; want no permissions", sa, err)
	}
	share.DryRun = nil
	share.CreateVolumePermission.Add = append(share.CreateVolumePermission.Add, types.CreateVolumePermission{Group: types.PermissionGroupAll})
	if _, err := c.ModifySnapshotAttribute(ctx, share); err != nil {
		t.Fatal(err)
	}
	sa, err = c.DescribeSnapshotAttribute(ctx, &awsec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap.ID), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(sa.CreateVolumePermissions) != 2 || sa.CreateVolumePermissions[0].Group != types.PermissionGroupAll ||
		aws.ToString(sa.CreateVolumePermissions[1].UserId) != "111122223333" {
		t.Errorf("after sharing: %+v, %v; want all and 111122223333", sa.CreateVolumePermissions, err)
	}
	for _, tc := range []struct {
		by   []string
		want int
	}{{nil, 1}, {[]string{"self"}, 1}, {[]string{"111122223333"}, 1}, {[]string{"all"}, 1}, {[]string{"444455556666"}, 1}} {
		ds, err := c.DescribeSnapshots(ctx, &awsec2.DescribeSnapshotsInput{RestorableByUserIds: tc.by})
		if err != nil || len(ds.Snapshots) != tc.want {
			t.Errorf("RestorableBy %v: %d snapshots, %v; want %d", tc.by, len(ds.Snapshots), err, tc.want)
		}
	}
	unshare := &awsec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap.ID), OperationType: types.OperationTypeRemove,
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, GroupNames: []string{"all"}, UserIds: []string{"111122223333"}}
	if _, err := c.ModifySnapshotAttribute(ctx, unshare); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		by   []string
		want int
	}{{[]string{"self"}, 1}, {[]string{"111122223333"}, 0}, {[]string{"all"}, 0}, {[]string{"111122223333", "self"}, 1}} {
		ds, err := c.DescribeSnapshots(ctx, &awsec2.DescribeSnapshotsInput{RestorableByUserIds: tc.by})
		if err != nil || len(ds.Snapshots) != tc.want {
			t.Errorf("unshared, RestorableBy %v: %d snapshots, %v; want %d", tc.by, len(ds.Snapshots), err, tc.want)
		}
	}

	missingVol, missingSnap := "vol-00000000000000000", "snap-00000000000000000"
	q := func(action, params string) string { return "Action=" + action + v + "&" + params }
	for _, tc := range []struct{ body, code, msg string }{
		{q("DescribeVolumeAttribute", "VolumeId="+vol.ID), CodeMissingParameter, "Attribute"},
		{q("DescribeVolumeAttribute", "VolumeId="+vol.ID+"&Attribute=size"), CodeInvalidParameterValue, "autoEnableIO or productCodes"},
		{q("DescribeVolumeAttribute", "Attribute=autoEnableIO"), CodeMissingParameter, "VolumeId"},
		{q("DescribeVolumeAttribute", "VolumeId=vol-x&Attribute=autoEnableIO"), CodeInvalidVolumeIDMalformed, "vol-x"},
		{q("DescribeVolumeAttribute", "VolumeId="+missingVol+"&Attribute=autoEnableIO"), CodeInvalidVolumeNotFound, missingVol},
		{q("DescribeVolumeAttribute", "VolumeId="+missingVol+"&Attribute=autoEnableIO&DryRun=true"), CodeInvalidVolumeNotFound, missingVol},
		{q("DescribeVolumeAttribute", "VolumeId="+vol.ID+"&Attribute=autoEnableIO&DryRun=true"), CodeDryRunOperation, ""},
		{q("DescribeVolumeAttribute", "VolumeId="+vol.ID+"&Attribute=autoEnableIO&Foo=1"), CodeUnknownParameter, "Foo"},
		{q("DescribeSnapshotAttribute", "SnapshotId="+snap.ID+"&Attribute=autoEnableIO"), CodeInvalidParameterValue, "createVolumePermission or productCodes"},
		{q("DescribeSnapshotAttribute", "Attribute=productCodes"), CodeMissingParameter, "SnapshotId"},
		{q("DescribeSnapshotAttribute", "SnapshotId=snap-x&Attribute=productCodes"), CodeInvalidSnapshotIDMalformed, "snap-x"},
		{q("DescribeSnapshotAttribute", "SnapshotId="+missingSnap+"&Attribute=productCodes"), CodeInvalidSnapshotNotFound, missingSnap},
		{q("DescribeSnapshotAttribute", "SnapshotId="+snap.ID+"&Attribute=productCodes&DryRun=true"), CodeDryRunOperation, ""},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&Attribute=createVolumePermission"), CodeMissingParameter, "CreateVolumePermission"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&Attribute=productCodes&OperationType=add&UserId.1=111122223333"), CodeInvalidParameterValue, "productCodes"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&UserId.1=111122223333"), CodeMissingParameter, "OperationType"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&OperationType=grant&UserId.1=111122223333"), CodeInvalidParameterValue, "OperationType"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&OperationType=add&UserId.1=12"), CodeInvalidParameterValue, "12-digit"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&CreateVolumePermission.Add.1.Group=everyone"), CodeInvalidParameterValue, "everyone"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&CreateVolumePermission.Remove.1.Group=all&CreateVolumePermission.Remove.1.UserId=111122223333"), CodeInvalidParameterValue, "either"},
		{q("ModifySnapshotAttribute", "SnapshotId="+missingSnap+"&OperationType=add&UserGroup.1=all"), CodeInvalidSnapshotNotFound, missingSnap},
		{q("ModifySnapshotAttribute", "OperationType=add&UserGroup.1=all"), CodeMissingParameter, "SnapshotId"},
		{q("ModifySnapshotAttribute", "SnapshotId="+snap.ID+"&CreateVolumePermission.Add.1.Group=all&DryRun=true"), CodeDryRunOperation, ""},
		{q("DescribeSnapshots", "RestorableBy.1=everyone"), CodeInvalidParameterValue, "RestorableBy"},
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
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
