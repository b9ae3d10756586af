package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// doublingTransport sends every request it is given twice, byte for byte
// (same body, same headers, same SigV4 signature), and returns the second
// answer: what a retry or a waiter that re-sends within the second of its
// signature looks like to the daemon.
type doublingTransport struct {
	next http.RoundTripper
	// first is the status of the first copy of the last request.
	first int
}

func (d *doublingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	again := r.Clone(r.Context())
	r.Body, again.Body = io.NopCloser(bytes.NewReader(body)), io.NopCloser(bytes.NewReader(body))
	resp, err := d.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d.first = resp.StatusCode
	return d.next.RoundTrip(again)
}

// TestAWSSDKRepeatedRequests: what tools do that sends the same request
// twice within a second works over SigV4 as it does on EC2 (and over the
// socket): the same signed request sent twice, a describe repeated in a
// loop, a waiter right after a describe, a snapshot deleted twice (the
// second gets InvalidSnapshot.NotFound). Then the calls SDK-based tools
// make first (DescribeRegions, DescribeAvailabilityZones) and the
// attribute calls, through the SDK's own parsers, with bad input refused
// with EC2's codes and nothing changed.
func TestAWSSDKRepeatedRequests(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	vol := d.createVolume(t, "64MiB")

	clients := map[string]*awsec2.Client{
		"over the unix socket": sdkClient(d),
		"over TCP with SigV4":  sdkTCPClient(addr, sdkKeys[0].id, sdkKeys[0].secret),
		"read-only key, SigV4": sdkTCPClient(addr, sdkKeys[1].id, sdkKeys[1].secret),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			if name == "read-only key, SigV4" {
				readOnlyCalls(t, c, vol.VolumeId)
				return
			}
			repeatedRequests(t, c, vol.VolumeId)
			zonesAndAttributes(t, d, c, vol.VolumeId)
		})
	}

	t.Run("the same signed request twice, byte for byte", func(t *testing.T) {
		dt := &doublingTransport{next: http.DefaultTransport}
		c := awsec2.New(awsec2.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String("http://" + addr),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: sdkKeys[0].id, SecretAccessKey: sdkKeys[0].secret}, nil
			}),
			HTTPClient:       &http.Client{Transport: dt},
			RetryMaxAttempts: 1,
		})
		out, err := c.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{VolumeIds: []string{vol.VolumeId}})
		if err != nil || dt.first != http.StatusOK || len(out.Volumes) != 1 {
			t.Fatalf("DescribeVolumes sent twice: first HTTP %d; second %+v, %v", dt.first, out, err)
		}
		if _, err := c.DescribeRegions(sdkCtx(t), &awsec2.DescribeRegionsInput{}); err != nil || dt.first != http.StatusOK {
			t.Errorf("DescribeRegions sent twice: first HTTP %d; second %v", dt.first, err)
		}
	})
}

// repeatedRequests is what waiters, paginators and scripts do in a tight
// loop with one client.
func repeatedRequests(t *testing.T, c *awsec2.Client, volID string) {
	for i := 0; i < 3; i++ {
		out, err := c.DescribeVolumes(sdkCtx(t), &awsec2.DescribeVolumesInput{VolumeIds: []string{volID}})
		if err != nil || len(out.Volumes) != 1 {
			t.Fatalf("DescribeVolumes %s, #%d of 3 in a row: %+v, %v", volID, i+1, out, err)
		}
	}
	snap, err := c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{VolumeId: aws.String(volID)})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	in := &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}}
	if _, err := c.DescribeSnapshots(sdkCtx(t), in); err != nil {
		t.Fatalf("DescribeSnapshots: %v", err)
	}
	// The waiter's first request is the describe just sent, again.
	waiter := awsec2.NewSnapshotCompletedWaiter(c, func(o *awsec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
	})
	if err := waiter.Wait(sdkCtx(t), in, sdkCallTimeout); err != nil {
		t.Fatalf("snapshot-completed waiter right after DescribeSnapshots: %v", err)
	}
	del := &awsec2.DeleteSnapshotInput{SnapshotId: snap.SnapshotId}
	if _, err := c.DeleteSnapshot(sdkCtx(t), del); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	_, err = c.DeleteSnapshot(sdkCtx(t), del)
	requireAPIError(t, "DeleteSnapshot again at once", err, "InvalidSnapshot.NotFound")
}

// zonesAndAttributes calls DescribeRegions, DescribeAvailabilityZones and
// the attribute calls, and checks that bad input changes nothing.
func zonesAndAttributes(t *testing.T, d *daemon, c *awsec2.Client, volID string) {
	regions, err := c.DescribeRegions(sdkCtx(t), &awsec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
	if err != nil || len(regions.Regions) != 1 || aws.ToString(regions.Regions[0].RegionName) != "us-east-1" {
		t.Fatalf("DescribeRegions: %+v, %v", regions, err)
	}
	requireRequestID(t, "DescribeRegions", regions.ResultMetadata)
	zones, err := c.DescribeAvailabilityZones(sdkCtx(t), &awsec2.DescribeAvailabilityZonesInput{
		Filters: []types.Filter{{Name: aws.String("region-name"), Values: []string{"us-east-1"}}},
	})
	if err != nil || len(zones.AvailabilityZones) != 1 || aws.ToString(zones.AvailabilityZones[0].ZoneName) != "us-east-1a" ||
		aws.ToString(zones.AvailabilityZones[0].ZoneId) != "use1-az1" || zones.AvailabilityZones[0].State != types.AvailabilityZoneStateAvailable {
		t.Fatalf("DescribeAvailabilityZones: %+v, %v", zones, err)
	}
	va, err := c.DescribeVolumeAttribute(sdkCtx(t), &awsec2.DescribeVolumeAttributeInput{VolumeId: aws.String(volID), Attribute: types.VolumeAttributeNameAutoEnableIO})
	if err != nil || va.AutoEnableIO == nil || !aws.ToBool(va.AutoEnableIO.Value) || aws.ToString(va.VolumeId) != volID {
		t.Fatalf("DescribeVolumeAttribute autoEnableIO: %+v, %v", va, err)
	}
	snap, err := c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{VolumeId: aws.String(volID)})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	defer c.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: snap.SnapshotId})
	// Completed, so that the describe-snapshots before and after the
	// refused requests below can be compared.
	waiter := awsec2.NewSnapshotCompletedWaiter(c, func(o *awsec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
	})
	if err := waiter.Wait(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}}, sdkCallTimeout); err != nil {
		t.Fatalf("snapshot-completed waiter: %v", err)
	}
	sa, err := c.DescribeSnapshotAttribute(sdkCtx(t), &awsec2.DescribeSnapshotAttributeInput{SnapshotId: snap.SnapshotId, Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || sa.CreateVolumePermissions == nil || len(sa.CreateVolumePermissions) != 0 {
		t.Fatalf("DescribeSnapshotAttribute createVolumePermission: %+v, %v", sa, err)
	}

	before := d.mustCLI(t, "describe-snapshots")
	_, err = c.ModifySnapshotAttribute(sdkCtx(t), &awsec2.ModifySnapshotAttributeInput{
		SnapshotId: snap.SnapshotId, Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		OperationType: types.OperationTypeAdd, UserIds: []string{"111122223333"}, DryRun: aws.Bool(true),
	})
	requireAPIError(t, "ModifySnapshotAttribute (dry run)", err, "DryRunOperation")
	_, err = c.DescribeAvailabilityZones(sdkCtx(t), &awsec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1b"}})
	requireAPIError(t, "DescribeAvailabilityZones of another zone", err, "InvalidParameterValue")
	_, err = c.DescribeRegions(sdkCtx(t), &awsec2.DescribeRegionsInput{RegionNames: []string{"eu-west-1"}})
	requireAPIError(t, "DescribeRegions of another region", err, "InvalidParameterValue")
	_, err = c.DescribeVolumeAttribute(sdkCtx(t), &awsec2.DescribeVolumeAttributeInput{VolumeId: aws.String("vol-00000000000000000"), Attribute: types.VolumeAttributeNameProductCodes})
	requireAPIError(t, "DescribeVolumeAttribute of a missing volume", err, "InvalidVolume.NotFound")
	_, err = c.DescribeSnapshotAttribute(sdkCtx(t), &awsec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String("snap-nothex!"), Attribute: types.SnapshotAttributeNameProductCodes})
	requireAPIError(t, "DescribeSnapshotAttribute of a malformed id", err, "InvalidSnapshotID.Malformed")
	_, err = c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{Size: aws.Int32(1), AvailabilityZone: aws.String("local")})
	requireAPIError(t, "CreateVolume in another zone", err, "InvalidParameterValue")
	if after := d.mustCLI(t, "describe-snapshots"); after != before {
		t.Errorf("refused requests changed the snapshots:\nbefore %s\nafter %s", before, after)
	}
}

// readOnlyCalls: a read-only key may call the new Describe calls and not
// ModifySnapshotAttribute.
func readOnlyCalls(t *testing.T, c *awsec2.Client, volID string) {
	if _, err := c.DescribeAvailabilityZones(sdkCtx(t), &awsec2.DescribeAvailabilityZonesInput{}); err != nil {
		t.Errorf("DescribeAvailabilityZones with a read-only key: %v", err)
	}
	if _, err := c.DescribeVolumeAttribute(sdkCtx(t), &awsec2.DescribeVolumeAttributeInput{VolumeId: aws.String(volID), Attribute: types.VolumeAttributeNameProductCodes}); err != nil {
		t.Errorf("DescribeVolumeAttribute with a read-only key: %v", err)
	}
	_, err := c.ModifySnapshotAttribute(sdkCtx(t), &awsec2.ModifySnapshotAttributeInput{
		SnapshotId: aws.String("snap-00000000000000000"), OperationType: types.OperationTypeRemove, GroupNames: []string{"all"}, DryRun: aws.Bool(true),
	})
	requireAPIError(t, "ModifySnapshotAttribute with a read-only key", err, "UnauthorizedOperation")
}
