package control

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
)

// sdkClientOf is the AWS SDK for Go v2's EC2 client, unmodified, talking
// to the test server's socket.
func sdkClientOf(env *testEnv) *awsec2.Client {
	return awsec2.New(awsec2.Options{
		Region:           DefaultRegion,
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       env.raw, // on env's socket
		RetryMaxAttempts: 1,
	})
}

// sdkCode is the EC2 error code of err as the SDK parsed it ("" if none).
func sdkCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestZoneID(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1":      "use1-az1",
		"eu-west-3":      "euw3-az1",
		"ap-southeast-2": "apse2-az1",
		"ca-central-1":   "cac1-az1",
		"ap-northeast-1": "apne1-az1",
		"us-gov-west-1":  "us-gov-west-1-az1",
		"lab":            "lab-az1",
		"x-up-1":         "x-up-1-az1",
	} {
		if got := ZoneID(region); got != want {
			t.Errorf("ZoneID(%q) = %q, want %q", region, got, want)
		}
	}
}

// TestZonesAndRegions: the SDK reads the daemon's one region and one zone,
// with EC2's filters; other names are refused, naming the valid ones.
func TestZonesAndRegions(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{}, Options{Region: "eu-west-3"})
	c := sdkClientOf(env)
	ctx := context.Background()

	zones, err := c.DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(zones.AvailabilityZones) != 1 {
		t.Fatalf("DescribeAvailabilityZones: %+v, %v", zones, err)
	}
	z := zones.AvailabilityZones[0]
	if aws.ToString(z.ZoneName) != "eu-west-3a" || aws.ToString(z.ZoneId) != "euw3-az1" || aws.ToString(z.RegionName) != "eu-west-3" ||
		z.State != types.AvailabilityZoneStateAvailable || z.OptInStatus != types.AvailabilityZoneOptInStatusOptInNotRequired ||
		aws.ToString(z.ZoneType) != "availability-zone" || aws.ToString(z.NetworkBorderGroup) != "eu-west-3" ||
		aws.ToString(z.GroupName) != "eu-west-3-zg-1" || z.Messages == nil || len(z.Messages) != 0 {
		t.Errorf("zone %+v", z)
	}
	// Volumes are in that zone.
	vol, err := c.CreateVolume(ctx, &awsec2.CreateVolumeInput{Size: aws.Int32(1), AvailabilityZone: aws.String("eu-west-3a")})
	if err != nil || aws.ToString(vol.AvailabilityZone) != "eu-west-3a" {
		t.Fatalf("CreateVolume in eu-west-3a: %+v, %v", vol, err)
	}
	if _, err := c.CreateVolume(ctx, &awsec2.CreateVolumeInput{Size: aws.Int32(1), AvailabilityZoneId: aws.String("euw3-az1"), DryRun: aws.Bool(true)}); sdkCode(err) != CodeDryRunOperation {
		t.Errorf("CreateVolume by zone ID, dry run: %v", err)
	}

	regions, err := c.DescribeRegions(ctx, &awsec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
	if err != nil || len(regions.Regions) != 1 {
		t.Fatalf("DescribeRegions: %+v, %v", regions, err)
	}
	r := regions.Regions[0]
	if aws.ToString(r.RegionName) != "eu-west-3" || aws.ToString(r.Endpoint) != "cowvol" || aws.ToString(r.OptInStatus) != "opt-in-not-required" {
		t.Errorf("region %+v", r)
	}

	filter := func(name string, values ...string) []types.Filter {
		return []types.Filter{{Name: aws.String(name), Values: values}}
	}
	for _, tc := range []struct {
		in   awsec2.DescribeAvailabilityZonesInput
		want int
		code string
	}{
		{awsec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"eu-west-3a"}}, 1, ""},
		{awsec2.DescribeAvailabilityZonesInput{ZoneIds: []string{"euw3-az1"}, AllAvailabilityZones: aws.Bool(true)}, 1, ""},
		{awsec2.DescribeAvailabilityZonesInput{Filters: filter("state", "available")}, 1, ""},
		{awsec2.DescribeAvailabilityZonesInput{Filters: filter("region-name", "eu-*")}, 1, ""},
		{awsec2.DescribeAvailabilityZonesInput{Filters: filter("zone-type", "local-zone")}, 0, ""},
		{awsec2.DescribeAvailabilityZonesInput{Filters: filter("opt-in-status", "opted-in")}, 0, ""},
		{awsec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"eu-west-3b"}}, 0, CodeInvalidParameterValue},
		{awsec2.DescribeAvailabilityZonesInput{ZoneIds: []string{"use1-az1"}}, 0, CodeInvalidParameterValue},
		{awsec2.DescribeAvailabilityZonesInput{Filters: filter("size", "1")}, 0, CodeInvalidParameterValue},
		{awsec2.DescribeAvailabilityZonesInput{DryRun: aws.Bool(true)}, 0, CodeDryRunOperation},
	} {
		out, err := c.DescribeAvailabilityZones(ctx, &tc.in)
		switch {
		case tc.code != "" && sdkCode(err) != tc.code:
			t.Errorf("%+v: %v, want %s", tc.in, err, tc.code)
		case tc.code == "" && (err != nil || len(out.AvailabilityZones) != tc.want):
			t.Errorf("%+v: %+v, %v; want %d zones", tc.in, out, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   awsec2.DescribeRegionsInput
		want int
		code string
	}{
		{awsec2.DescribeRegionsInput{RegionNames: []string{"eu-west-3"}}, 1, ""},
		{awsec2.DescribeRegionsInput{Filters: filter("endpoint", "cowvol")}, 1, ""},
		{awsec2.DescribeRegionsInput{Filters: filter("region-name", "us-*")}, 0, ""},
		{awsec2.DescribeRegionsInput{RegionNames: []string{"us-east-1"}}, 0, CodeInvalidParameterValue},
		{awsec2.DescribeRegionsInput{Filters: filter("zone-name", "x")}, 0, CodeInvalidParameterValue},
		{awsec2.DescribeRegionsInput{DryRun: aws.Bool(true)}, 0, CodeDryRunOperation},
	} {
		out, err := c.DescribeRegions(ctx, &tc.in)
		switch {
		case tc.code != "" && sdkCode(err) != tc.code:
			t.Errorf("%+v: %v, want %s", tc.in, err, tc.code)
		case tc.code == "" && (err != nil || len(out.Regions) != tc.want):
			t.Errorf("%+v: %+v, %v; want %d regions", tc.in, out, err, tc.want)
		}
	}
	_, err = c.DescribeRegions(ctx, &awsec2.DescribeRegionsInput{RegionNames: []string{"us-east-1"}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorMessage() != "Invalid region: [us-east-1]. This daemon serves region eu-west-3 only." {
		t.Errorf("another region: %v", err)
	}
	_, err = c.CreateVolume(ctx, &awsec2.CreateVolumeInput{Size: aws.Int32(1), AvailabilityZone: aws.String("us-east-1a")})
	if !errors.As(err, &ae) || ae.ErrorMessage() != "Invalid availability zone: [us-east-1a]. Valid zones: eu-west-3a." {
		t.Errorf("another zone: %v", err)
	}
}
