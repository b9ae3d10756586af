package integration

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

const sdkCallTimeout = 2 * time.Minute // one SDK call or waiter

// sdkClient is an EC2 client of the AWS SDK for Go v2 that talks to the
// daemon over its unix socket, unsigned, without retries (so an error is
// the daemon's answer to the one request, not the last of several).
func sdkClient(d *daemon) *awsec2.Client {
	return awsec2.New(awsec2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       sdkHTTPClient(unixDialer(d.Socket)),
		RetryMaxAttempts: 1,
	})
}

// sdkTCPClient is an EC2 client that talks to the daemon's TCP listener at
// addr, signing with the access key id and secret (anonymous, so unsigned,
// if id is empty), without retries.
func sdkTCPClient(addr, id, secret string) *awsec2.Client {
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if id != "" {
		creds = aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, Source: "cowvol test"}, nil
		}))
	}
	return awsec2.New(awsec2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      creds,
		HTTPClient:       sdkHTTPClient(nil),
		RetryMaxAttempts: 1,
	})
}

// sdkCtx is a context for one SDK call, cancelled when the (sub)test ends.
func sdkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sdkCallTimeout)
	t.Cleanup(cancel)
	return ctx
}

// requireRequestID checks the SDK read a request ID from the answer.
func requireRequestID(t *testing.T, op string, md middleware.Metadata) {
	t.Helper()
	if id, ok := awsmiddleware.GetRequestIDMetadata(md); !ok || id == "" {
		t.Errorf("%s: the SDK read no request ID (got %q, %v)", op, id, ok)
	}
}

// requireAPIError checks err is an EC2 error with this code, as the SDK
// surfaces it, and returns its HTTP status (0 if the SDK gave none).
func requireAPIError(t *testing.T, op string, err error, code string) int {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want error %s", op, code)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: error is not a smithy.APIError (the SDK could not parse the error answer?): %v", op, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("%s: error code %q (%v), want %q", op, ae.ErrorCode(), err, code)
	}
	if ae.ErrorMessage() == "" {
		t.Errorf("%s: %s has no message", op, code)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Errorf("%s: error carries no HTTP response: %v", op, err)
		return 0
	}
	if re.ServiceRequestID() == "" {
		t.Errorf("%s: the SDK read no request ID from the error answer", op)
	}
	return re.HTTPStatusCode()
}

func sdkTags(tags []types.Tag) map[string]string {
	m := make(map[string]string)
	for _, tg := range tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// TestAWSSDKDrivesCowvol is a user's session with the AWS SDK for Go v2's
// EC2 client, unmodified, pointed at the daemon's socket and then at its
// TCP listener with SigV4-signed requests: volumes, snapshots, the
// snapshot-completed waiter, the paginator and errors must all come
// through as they do from Amazon EC2. Then the TCP listener's refusals:
// unsigned, wrongly signed, and signed by a read-only key.
func TestAWSSDKDrivesCowvol(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))

	t.Run("over the unix socket", func(t *testing.T) { sdkSession(t, d, sdkClient(d)) })
	t.Run("over TCP with SigV4", func(t *testing.T) {
		sdkSession(t, d, sdkTCPClient(addr, sdkKeys[0].id, sdkKeys[0].secret))
	})
	t.Run("TCP refusals", func(t *testing.T) {
		vol := d.createVolume(t, "64MiB")
		before := d.mustCLI(t, "describe-volumes")

		_, err := sdkTCPClient(addr, "", "").DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{})
		if st := requireAPIError(t, "unsigned DescribeVolumes", err, "MissingAuthenticationToken"); st != http.StatusUnauthorized {
			t.Errorf("MissingAuthenticationToken: HTTP status %d, want 401", st)
		}
		_, err = sdkTCPClient(addr, sdkKeys[0].id, "wJalrXUtnFEMI/K7MDENG/notTheSecretKEY").
			CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{Size: aws.Int32(1)})
		if st := requireAPIError(t, "CreateVolume signed with a wrong secret", err, "AuthFailure"); st != http.StatusUnauthorized {
			t.Errorf("AuthFailure: HTTP status %d, want 401", st)
		}

		reader := sdkTCPClient(addr, sdkKeys[1].id, sdkKeys[1].secret)
		if _, err := reader.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{}); err != nil {
			t.Errorf("DescribeVolumes with the read-only key: %v", err)
		}
		vst, err := reader.DescribeVolumeStatus(sdkCtx(t), &awsec2.DescribeVolumeStatusInput{VolumeIds: []string{vol.VolumeId}})
		if err != nil || len(vst.VolumeStatuses) != 1 || vst.VolumeStatuses[0].VolumeStatus == nil ||
			vst.VolumeStatuses[0].VolumeStatus.Status != types.VolumeStatusInfoStatusOk {
			t.Errorf("DescribeVolumeStatus with the read-only key: %+v, %v; want the volume ok", vst, err)
		}
		for _, dry := range []bool{false, true} {
			_, err = reader.DeleteVolume(sdkCtx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(vol.VolumeId), DryRun: aws.Bool(dry)})
			if st := requireAPIError(t, "DeleteVolume with the read-only key", err, "UnauthorizedOperation"); st != http.StatusForbidden {
				t.Errorf("UnauthorizedOperation: HTTP status %d, want 403", st)
			}
		}
		if after := d.mustCLI(t, "describe-volumes"); after != before {
			t.Errorf("refused requests changed the volumes:\nbefore %s\nafter %s", before, after)
		}
	})
}

// sdkAccountID is the test daemon's --account-id, the ownerId of everything.
const sdkAccountID = "123456789012"

// sdkKeys are the access keys of the SDK test's credentials file: a full
// one and a read-only one.
var sdkKeys = []accessKey{
	{profile: "admin", id: "AKIACOWVOLTEST0001", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	{profile: "auditor", id: "AKIACOWVOLTEST0002", secret: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", access: "read-only"},
}

// sdkSession is the user's session of TestAWSSDKDrivesCowvol with client c.
// It leaves no volume or snapshot behind.
func sdkSession(t *testing.T, d *daemon, c *awsec2.Client) {

	var volID string       // the volume of step 1
	var snap string        // the snapshot of step 3
	var volFromSnap string // the volume of step 6

	step(t, "create a 1 GiB tagged volume", func(t *testing.T) {
		out, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{
			Size: aws.Int32(1),
			TagSpecifications: []types.TagSpecification{{
				ResourceType: types.ResourceTypeVolume,
				Tags:         []types.Tag{{Key: aws.String("team"), Value: aws.String("sdk")}},
			}},
		})
		if err != nil {
			t.Fatalf("CreateVolume: %v", err)
		}
		requireRequestID(t, "CreateVolume", out.ResultMetadata)
		id := aws.ToString(out.VolumeId)
		if !validID("vol-", id) {
			t.Fatalf("VolumeId %q, want vol- and 17 lowercase hex digits", id)
		}
		if got := aws.ToInt32(out.Size); got != 1 {
			t.Errorf("Size %d, want 1", got)
		}
		if got := sdkTags(out.Tags)["team"]; got != "sdk" {
			t.Errorf("Tags %v, want team=sdk", sdkTags(out.Tags))
		}
		if out.State != types.VolumeStateAvailable {
			t.Errorf("State %q, want available", out.State)
		}
		if out.CreateTime == nil || out.CreateTime.IsZero() {
			t.Errorf("CreateTime not set")
		}
		if aws.ToString(out.AvailabilityZone) == "" || out.VolumeType == "" || aws.ToBool(out.Encrypted) {
			t.Errorf("AvailabilityZone %q, VolumeType %q, Encrypted %v; want a zone, a type, false",
				aws.ToString(out.AvailabilityZone), out.VolumeType, aws.ToBool(out.Encrypted))
		}
		volID = id
		if _, err := os.Stat(d.volumePath(id)); err != nil {
			t.Errorf("volume file: %v", err)
		}
	})

	step(t, "find it by its tag", func(t *testing.T) {
		out, err := c.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{
			Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"sdk"}}},
		})
		if err != nil {
			t.Fatalf("DescribeVolumes: %v", err)
		}
		requireRequestID(t, "DescribeVolumes", out.ResultMetadata)
		if len(out.Volumes) != 1 || aws.ToString(out.Volumes[0].VolumeId) != volID {
			var ids []string
			for _, v := range out.Volumes {
				ids = append(ids, aws.ToString(v.VolumeId))
			}
			t.Fatalf("DescribeVolumes tag:team=sdk found %v, want [%s]", ids, volID)
		}
		v := out.Volumes[0]
		if v.Attachments == nil || len(v.Attachments) != 0 {
			t.Errorf("Attachments %v, want an empty list", v.Attachments)
		}
		if aws.ToInt32(v.Size) != 1 || v.State != types.VolumeStateAvailable || sdkTags(v.Tags)["team"] != "sdk" {
			t.Errorf("described volume: Size %d, State %q, Tags %v", aws.ToInt32(v.Size), v.State, sdkTags(v.Tags))
		}

		out, err = c.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{
			Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"nobody"}}},
		})
		if err != nil {
			t.Fatalf("DescribeVolumes tag:team=nobody: %v", err)
		}
		if len(out.Volumes) != 0 {
			t.Errorf("DescribeVolumes tag:team=nobody found %d volumes, want none", len(out.Volumes))
		}
	})

	step(t, "snapshot it with a description and tags", func(t *testing.T) {
		start := time.Now()
		out, err := c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{
			VolumeId:    aws.String(volID),
			Description: aws.String("sdk backup"),
			TagSpecifications: []types.TagSpecification{{
				ResourceType: types.ResourceTypeSnapshot,
				Tags:         []types.Tag{{Key: aws.String("purpose"), Value: aws.String("backup")}},
			}},
		})
		if err != nil {
			t.Fatalf("CreateSnapshot: %v", err)
		}
		requireRequestID(t, "CreateSnapshot", out.ResultMetadata)
		snap = aws.ToString(out.SnapshotId)
		if !validID("snap-", snap) {
			t.Fatalf("SnapshotId %q, want snap- and 17 lowercase hex digits", snap)
		}
		if got := aws.ToString(out.VolumeId); got != volID {
			t.Errorf("VolumeId %q, want %q", got, volID)
		}
		t.Logf("CreateSnapshot answered %s in state %q, progress %q", snap, out.State, aws.ToString(out.Progress))
		if out.State != types.SnapshotStatePending && out.State != types.SnapshotStateCompleted {
			t.Errorf("State %q, want pending or completed", out.State)
		}
		if p := aws.ToString(out.Progress); !strings.HasSuffix(p, "%") {
			t.Errorf("Progress %q, want N%%", p)
		}
		if got := aws.ToString(out.OwnerId); got != sdkAccountID {
			t.Errorf("OwnerId %q, want the daemon's --account-id %s", got, sdkAccountID)
		}
		if got := aws.ToInt32(out.VolumeSize); got != 1 {
			t.Errorf("VolumeSize %d, want 1", got)
		}
		if got := aws.ToString(out.Description); got != "sdk backup" {
			t.Errorf("Description %q, want %q", got, "sdk backup")
		}
		if out.StartTime == nil {
			t.Errorf("StartTime not set")
		} else if st := *out.StartTime; st.Before(start.Add(-time.Minute)) || st.After(time.Now().Add(time.Minute)) {
			t.Errorf("StartTime %v, want about %v", st, start)
		}
		if got := sdkTags(out.Tags)["purpose"]; got != "backup" {
			t.Errorf("Tags %v, want purpose=backup", sdkTags(out.Tags))
		}
	})

	waiter := awsec2.NewSnapshotCompletedWaiter(c, func(o *awsec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = time.Second
	})
	waitCompleted := func(t *testing.T, id string) {
		t.Helper()
		if err := waiter.Wait(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}, sdkCallTimeout); err != nil {
			t.Fatalf("snapshot-completed waiter on %s: %v", id, err)
		}
	}

	step(t, "wait for the snapshot to complete", func(t *testing.T) {
		waitCompleted(t, snap)
		out, err := c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
		if err != nil {
			t.Fatalf("DescribeSnapshots: %v", err)
		}
		requireRequestID(t, "DescribeSnapshots", out.ResultMetadata)
		if len(out.Snapshots) != 1 {
			t.Fatalf("DescribeSnapshots %s returned %d snapshots", snap, len(out.Snapshots))
		}
		s := out.Snapshots[0]
		if s.State != types.SnapshotStateCompleted || aws.ToString(s.Progress) != "100%" {
			t.Errorf("after the waiter: State %q, Progress %q; want completed, 100%%", s.State, aws.ToString(s.Progress))
		}
		if aws.ToString(s.Description) != "sdk backup" || sdkTags(s.Tags)["purpose"] != "backup" {
			t.Errorf("described snapshot: Description %q, Tags %v", aws.ToString(s.Description), sdkTags(s.Tags))
		}
		if s.StorageTier != types.StorageTierStandard {
			t.Errorf("StorageTier %q, want standard", s.StorageTier)
		}
		if s.CompletionTime == nil || s.StartTime == nil || s.CompletionTime.Before(*s.StartTime) {
			t.Errorf("CompletionTime %v, StartTime %v: want both, completion not before start", s.CompletionTime, s.StartTime)
		}
		if s.FullSnapshotSizeInBytes == nil {
			t.Errorf("FullSnapshotSizeInBytes not set on a completed snapshot")
		}
	})

	const nSnaps = 7
	all := map[string]bool{snap: true}
	step(t, "page through seven completed snapshots five at a time", func(t *testing.T) {
		for len(all) < nSnaps {
			out, err := c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{VolumeId: aws.String(volID)})
			if err != nil {
				t.Fatalf("CreateSnapshot #%d: %v", len(all)+1, err)
			}
			id := aws.ToString(out.SnapshotId)
			waitCompleted(t, id)
			all[id] = true
		}
		p := awsec2.NewDescribeSnapshotsPaginator(c, &awsec2.DescribeSnapshotsInput{
			MaxResults: aws.Int32(5),
			Filters:    []types.Filter{{Name: aws.String("status"), Values: []string{"completed"}}},
		})
		seen := make(map[string]bool)
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(sdkCtx(t))
			if err != nil {
				t.Fatalf("DescribeSnapshots page %d: %v", pages+1, err)
			}
			pages++
			if len(out.Snapshots) > 5 {
				t.Errorf("page %d has %d snapshots, more than MaxResults 5", pages, len(out.Snapshots))
			}
			for _, s := range out.Snapshots {
				id := aws.ToString(s.SnapshotId)
				if seen[id] {
					t.Errorf("page %d repeats %s", pages, id)
				}
				seen[id] = true
				if s.State != types.SnapshotStateCompleted {
					t.Errorf("status=completed page %d has %s in state %q", pages, id, s.State)
				}
			}
			if pages > nSnaps {
				t.Fatalf("more than %d pages for %d snapshots: the paginator does not end", nSnaps, nSnaps)
			}
		}
		if pages < 2 {
			t.Errorf("%d snapshots in %d page(s) with MaxResults 5, want at least 2", len(seen), pages)
		}
		for id := range all {
			if !seen[id] {
				t.Errorf("the paginator never returned %s", id)
			}
		}
		if len(seen) != len(all) {
			t.Errorf("the paginator returned %d snapshots, want %d", len(seen), len(all))
		}
	})

	step(t, "create a volume from the snapshot", func(t *testing.T) {
		out, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{SnapshotId: aws.String(snap)})
		if err != nil {
			t.Fatalf("CreateVolume --snapshot-id: %v", err)
		}
		requireRequestID(t, "CreateVolume", out.ResultMetadata)
		volFromSnap = aws.ToString(out.VolumeId)
		if !validID("vol-", volFromSnap) {
			t.Fatalf("VolumeId %q, want vol- and 17 lowercase hex digits", volFromSnap)
		}
		if got := aws.ToString(out.SnapshotId); got != snap {
			t.Errorf("SnapshotId %q, want %q", got, snap)
		}
		if got := aws.ToInt32(out.Size); got != 1 {
			t.Errorf("Size %d, want the snapshot's 1", got)
		}
		if _, err := os.Stat(d.volumePath(volFromSnap)); err != nil {
			t.Errorf("the new volume's file: %v", err)
		}
	})

	step(t, "errors come through as EC2 errors", func(t *testing.T) {
		_, err := c.DeleteVolume(sdkCtx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String("vol-00000000000000000")})
		if st := requireAPIError(t, "DeleteVolume of a missing volume", err, "InvalidVolume.NotFound"); st != http.StatusBadRequest {
			t.Errorf("InvalidVolume.NotFound: HTTP status %d, want 400", st)
		}

		_, err = c.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-00000000000000000")})
		if st := requireAPIError(t, "DeleteSnapshot of a missing snapshot", err, "InvalidSnapshot.NotFound"); st != http.StatusBadRequest {
			t.Errorf("InvalidSnapshot.NotFound: HTTP status %d, want 400", st)
		}

		before := len(all)
		_, err = c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{VolumeId: aws.String(volID), DryRun: aws.Bool(true)})
		if st := requireAPIError(t, "CreateSnapshot with DryRun", err, "DryRunOperation"); st != http.StatusPreconditionFailed {
			t.Errorf("DryRunOperation: HTTP status %d, want 412", st)
		}
		out, err := c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{
			Filters: []types.Filter{{Name: aws.String("volume-id"), Values: []string{volID}}},
		})
		if err != nil {
			t.Fatalf("DescribeSnapshots volume-id=%s: %v", volID, err)
		}
		if len(out.Snapshots) != before {
			t.Errorf("after a DryRun CreateSnapshot the volume has %d snapshots, want %d", len(out.Snapshots), before)
		}

		_, err = c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-nothex!"}})
		if st := requireAPIError(t, "DescribeSnapshots of a malformed id", err, "InvalidSnapshotID.Malformed"); st != http.StatusBadRequest {
			t.Errorf("InvalidSnapshotID.Malformed: HTTP status %d, want 400", st)
		}
		// IncorrectState (DeleteVolume of a volume with a pending
		// snapshot) is not checked: a 1 GiB snapshot completes before a
		// second request could reach the daemon.
	})

	step(t, "encryption: an encrypted volume, its snapshot, a copy, their lineages", func(t *testing.T) {
		vol, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{
			Size: aws.Int32(1), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/aws/ebs"),
		})
		if err != nil {
			t.Fatalf("CreateVolume Encrypted: %v", err)
		}
		arn := aws.ToString(vol.KmsKeyId)
		if !aws.ToBool(vol.Encrypted) || !strings.HasPrefix(arn, "arn:aws:kms:us-east-1:"+sdkAccountID+":key/") {
			t.Fatalf("CreateVolume Encrypted: Encrypted %v, KmsKeyId %q", aws.ToBool(vol.Encrypted), arn)
		}
		sn, err := c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
		if err != nil {
			t.Fatalf("CreateSnapshot of an encrypted volume: %v", err)
		}
		if !aws.ToBool(sn.Encrypted) || aws.ToString(sn.KmsKeyId) != arn || sn.SseType != types.SSETypeSseKms {
			t.Errorf("CreateSnapshot of an encrypted volume: Encrypted %v, KmsKeyId %q, SseType %q", aws.ToBool(sn.Encrypted), aws.ToString(sn.KmsKeyId), sn.SseType)
		}
		waitCompleted(t, aws.ToString(sn.SnapshotId))
		cp, err := c.CopySnapshot(sdkCtx(t), &awsec2.CopySnapshotInput{
			SourceSnapshotId: sn.SnapshotId, SourceRegion: aws.String("us-east-1"), Description: aws.String("sdk copy"),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("copy"), Value: aws.String("yes")}}}},
		})
		if err != nil {
			t.Fatalf("CopySnapshot: %v", err)
		}
		requireRequestID(t, "CopySnapshot", cp.ResultMetadata)
		if !validID("snap-", aws.ToString(cp.SnapshotId)) || sdkTags(cp.Tags)["copy"] != "yes" {
			t.Fatalf("CopySnapshot: SnapshotId %q, Tags %v", aws.ToString(cp.SnapshotId), sdkTags(cp.Tags))
		}
		waitCompleted(t, aws.ToString(cp.SnapshotId))
		out, err := c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(sn.SnapshotId), aws.ToString(cp.SnapshotId)}})
		if err != nil || len(out.Snapshots) != 2 {
			t.Fatalf("DescribeSnapshots: %v, %d snapshots", err, len(out.Snapshots))
		}
		dek := map[string]string{}
		for _, s := range out.Snapshots {
			if !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != arn || aws.ToString(s.DataEncryptionKeyId) == "" {
				t.Errorf("DescribeSnapshots %s: Encrypted %v, KmsKeyId %q, DataEncryptionKeyId %q", aws.ToString(s.SnapshotId),
					aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), aws.ToString(s.DataEncryptionKeyId))
			}
			dek[aws.ToString(s.SnapshotId)] = aws.ToString(s.DataEncryptionKeyId)
		}
		if dek[aws.ToString(sn.SnapshotId)] == dek[aws.ToString(cp.SnapshotId)] {
			t.Errorf("the copy shares its source's lineage %s; want a data key of its own", dek[aws.ToString(cp.SnapshotId)])
		}
		from, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{SnapshotId: cp.SnapshotId})
		if err != nil || !aws.ToBool(from.Encrypted) || aws.ToString(from.KmsKeyId) != arn {
			t.Fatalf("CreateVolume from the encrypted copy: %v %+v", err, from)
		}

		_, err = c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{Size: aws.Int32(1), KmsKeyId: aws.String("alias/aws/ebs")})
		requireAPIError(t, "CreateVolume KmsKeyId without Encrypted", err, "InvalidParameterDependency")
		_, err = c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{Size: aws.Int32(1), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/none-such")})
		requireAPIError(t, "CreateVolume with a missing KMS key", err, "InvalidKMSKey.NotFound")
		_, err = c.CopySnapshot(sdkCtx(t), &awsec2.CopySnapshotInput{SourceSnapshotId: sn.SnapshotId, SourceRegion: aws.String("us-east-1"), DryRun: aws.Bool(true)})
		if st := requireAPIError(t, "CopySnapshot with DryRun", err, "DryRunOperation"); st != http.StatusPreconditionFailed {
			t.Errorf("DryRunOperation: HTTP status %d, want 412", st)
		}
		for _, id := range []*string{cp.SnapshotId, sn.SnapshotId} {
			if _, err := c.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: id}); err != nil {
				t.Errorf("DeleteSnapshot %s: %v", aws.ToString(id), err)
			}
		}
		for _, id := range []*string{from.VolumeId, vol.VolumeId} {
			if _, err := c.DeleteVolume(sdkCtx(t), &awsec2.DeleteVolumeInput{VolumeId: id}); err != nil {
				t.Errorf("DeleteVolume %s: %v", aws.ToString(id), err)
			}
		}
	})

	step(t, "delete the snapshots and volumes", func(t *testing.T) {
		// The snapshots first (EC2 lets a snapshot go while a volume
		// made from it lives on), then both volumes.
		for id := range all {
			out, err := c.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
			if err != nil {
				t.Fatalf("DeleteSnapshot %s: %v", id, err)
			}
			requireRequestID(t, "DeleteSnapshot", out.ResultMetadata)
		}
		for _, id := range []string{volFromSnap, volID} {
			out, err := c.DeleteVolume(sdkCtx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(id)})
			if err != nil {
				t.Fatalf("DeleteVolume %s: %v", id, err)
			}
			requireRequestID(t, "DeleteVolume", out.ResultMetadata)
		}
		_, err := c.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{VolumeIds: []string{volID}})
		requireAPIError(t, "DescribeVolumes of a deleted volume", err, "InvalidVolume.NotFound")
		_, err = c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
		requireAPIError(t, "DescribeSnapshots of a deleted snapshot", err, "InvalidSnapshot.NotFound")
		out, err := c.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{})
		if err != nil {
			t.Fatalf("DescribeVolumes: %v", err)
		}
		if len(out.Volumes) != 0 {
			t.Errorf("%d volumes left after deleting them all", len(out.Volumes))
		}
		for _, id := range []string{volFromSnap, volID} {
			if _, err := os.Stat(d.volumePath(id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s's file after DeleteVolume: %v, want it gone", id, err)
			}
		}
	})
}
