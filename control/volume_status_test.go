package control

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// impairedEnv is a test environment with two volumes: healthy, and
// impaired, restored from a snapshot whose only pack has a byte flipped in
// the middle (inside a chunk: the blocks are random, the index is small).
type impairedEnv struct {
	*testEnv
	healthy, impaired, snap, pack string
}

func newImpairedEnv(t *testing.T) *impairedEnv {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	st, err := snapstore.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	// No retry within the test: the volume stays impaired.
	env := &impairedEnv{testEnv: newTestEnvWith(t, cow.Options{SnapshotStore: st, HydrateFaultRetry: time.Hour}, Options{})}
	env.healthy = env.create(t, CreateVolumeInput{SizeBytes: 1 << 20}).VolumeID
	h, err := env.engine.OpenVolume(env.healthy)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{7}).Read(data)
	if _, err := h.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	h.Close()
	env.snap = env.snapshot(t, CreateSnapshotInput{VolumeID: env.healthy}).SnapshotID
	env.waitCompleted(t, env.snap)

	var packs []string
	filepath.WalkDir(filepath.Join(root, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			packs = append(packs, p)
		}
		return err
	})
	if len(packs) != 1 {
		t.Fatalf("packs %v, want one", packs)
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, packs[0])
	env.pack = filepath.ToSlash(rel)

	env.impaired = env.create(t, CreateVolumeInput{SnapshotID: env.snap}).VolumeID
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if vi, _ := env.engine.VolumeInfo(env.impaired); vi.Status == cow.VolumeStatusImpaired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s not impaired after 20s", env.impaired)
		}
	}
	return env
}

// TestVolumeStatusWireFormat: DescribeVolumeStatus answers with EC2's
// elements, names and nesting: an ok volume and an impaired one, whose
// event names the snapshot and the damaged pack.
func TestVolumeStatusWireFormat(t *testing.T) {
	env := newImpairedEnv(t)
	head := func(h http.Header) string {
		return `^<\?xml version="1.0" encoding="UTF-8"\?>\n` +
			`<DescribeVolumeStatusResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + h.Get("X-Amzn-RequestId") + `</requestId>` +
			`<volumeStatusSet>`
	}
	const tail = `</volumeStatusSet></DescribeVolumeStatusResponse>$`

	status, h, body := env.post(t, "Action=DescribeVolumeStatus"+v+"&VolumeId.1="+env.impaired)
	want := regexp.MustCompile(head(h) +
		`<item><volumeId>` + env.impaired + `</volumeId><availabilityZone>us-east-1a</availabilityZone>` +
		`<volumeStatus><status>impaired</status><details>` +
		`<item><name>io-enabled</name><status>failed</status></item>` +
		`<item><name>io-performance</name><status>not-applicable</status></item>` +
		`</details></volumeStatus>` +
		`<eventsSet><item><eventId>evol-[0-9a-f]{17}</eventId><eventType>potential-data-inconsistency</eventType>` +
		`<description>snapshot ` + env.snap + `: object ` + regexp.QuoteMeta(env.pack) + ` cannot be read \(1 block needs it;[^<]*snapshot data is corrupt[^<]*</description>` +
		`<notBefore>` + timestampRE + `</notBefore></item></eventsSet>` +
		`<actionsSet></actionsSet></item>` + tail)
	if status != 200 || !want.MatchString(body) {
		t.Fatalf("impaired volume: %d\n%s\ndoes not match\n%s", status, body, want)
	}

	status, h, body = env.post(t, "Action=DescribeVolumeStatus"+v+"&VolumeId.1="+env.healthy)
	want = regexp.MustCompile(head(h) +
		`<item><volumeId>` + env.healthy + `</volumeId><availabilityZone>us-east-1a</availabilityZone>` +
		`<volumeStatus><status>ok</status><details>` +
		`<item><name>io-enabled</name><status>passed</status></item>` +
		`<item><name>io-performance</name><status>not-applicable</status></item>` +
		`</details></volumeStatus><eventsSet></eventsSet><actionsSet></actionsSet></item>` + tail)
	if status != 200 || !want.MatchString(body) {
		t.Fatalf("ok volume: %d\n%s\ndoes not match\n%s", status, body, want)
	}

	// DescribeVolumes still says available: EC2's volume states have no
	// impaired.
	out, err := env.client.DescribeVolumes(context.Background(), DescribeVolumesInput{VolumeIDs: []string{env.impaired}})
	if err != nil || len(out.Volumes) != 1 || out.Volumes[0].Status != "available" {
		t.Errorf("DescribeVolumes of the impaired volume: %+v, %v; want available", out, err)
	}
}

// TestVolumeStatusRequests: filters, paging, IDs and errors, through the
// typed client.
func TestVolumeStatusRequests(t *testing.T) {
	env := newImpairedEnv(t)
	ctx := context.Background()
	ids := func(in DescribeVolumeStatusInput) []string {
		t.Helper()
		out, err := env.client.DescribeVolumeStatus(ctx, in)
		if err != nil {
			t.Fatalf("%+v: %v", in, err)
		}
		var got []string
		for _, it := range out.VolumeStatuses {
			got = append(got, it.VolumeID)
		}
		return got
	}
	both := []string{env.healthy, env.impaired}
	sortStrings(both)
	for _, tc := range []struct {
		filter Filter
		want   []string
	}{
		{Filter{"volume-status.status", []string{"impaired"}}, []string{env.impaired}},
		{Filter{"volume-status.status", []string{"ok", "impaired"}}, both},
		{Filter{"volume-status.details-name", []string{"io-enabled"}}, both},
		{Filter{"volume-status.details-status", []string{"failed"}}, []string{env.impaired}},
		{Filter{"volume-status.details-status", []string{"passed"}}, []string{env.healthy}},
		{Filter{"event.event-type", []string{"potential-*"}}, []string{env.impaired}},
		{Filter{"event.description", []string{"*" + env.pack + "*"}}, []string{env.impaired}},
		{Filter{"action.code", []string{"*"}}, nil},
		{Filter{"availability-zone", []string{"us-east-1a"}}, both},
	} {
		if got := ids(DescribeVolumeStatusInput{Filters: []Filter{tc.filter}}); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("filter %v: %v, want %v", tc.filter, got, tc.want)
		}
	}
	for _, max := range []int{5, 1000, 1001} { // over 1000: 1000, as EC2
		out, err := env.client.DescribeVolumeStatus(ctx, DescribeVolumeStatusInput{MaxResults: max})
		if err != nil || len(out.VolumeStatuses) != 2 || out.NextToken != "" {
			t.Errorf("MaxResults %d: %+v, %v", max, out, err)
		}
	}

	for _, tc := range []struct {
		in   DescribeVolumeStatusInput
		code string
	}{
		{DescribeVolumeStatusInput{VolumeIDs: []string{"vol-00000000000000000"}}, CodeInvalidVolumeNotFound},
		{DescribeVolumeStatusInput{VolumeIDs: []string{"vol-x"}}, CodeInvalidVolumeIDMalformed},
		{DescribeVolumeStatusInput{VolumeIDs: []string{env.impaired}, MaxResults: 5}, CodeInvalidParameterCombination},
		{DescribeVolumeStatusInput{MaxResults: 4}, CodeInvalidParameterValue},
		{DescribeVolumeStatusInput{Filters: []Filter{{"tag:team", []string{"db"}}}}, CodeInvalidParameterValue},
		{DescribeVolumeStatusInput{Filters: []Filter{{"status", []string{"ok"}}}}, CodeInvalidParameterValue},
		{DescribeVolumeStatusInput{NextToken: "%%%"}, CodeInvalidPaginationToken},
		{DescribeVolumeStatusInput{DryRun: true}, CodeDryRunOperation},
	} {
		if _, err := env.client.DescribeVolumeStatus(ctx, tc.in); !isCode(err, tc.code) {
			t.Errorf("%+v: %v, want %s", tc.in, err, tc.code)
		}
	}
}

// TestVolumeStatusSDK: the AWS SDK for Go v2's EC2 client parses the
// answer into its VolumeStatusItem types.
func TestVolumeStatusSDK(t *testing.T) {
	env := newImpairedEnv(t)
	c := awsec2.New(awsec2.Options{
		Region:           DefaultRegion,
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       env.raw, // on env's socket
		RetryMaxAttempts: 1,
	})
	out, err := c.DescribeVolumeStatus(context.Background(), &awsec2.DescribeVolumeStatusInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.VolumeStatuses) != 2 {
		t.Fatalf("%d volume statuses, want 2", len(out.VolumeStatuses))
	}
	for _, it := range out.VolumeStatuses {
		id := aws.ToString(it.VolumeId)
		vs := it.VolumeStatus
		if vs == nil || len(vs.Details) != 2 || aws.ToString(it.AvailabilityZone) != "us-east-1a" || len(it.Actions) != 0 {
			t.Fatalf("%s: %+v", id, it)
		}
		wantStatus, wantIO, wantEvents := types.VolumeStatusInfoStatusOk, "passed", 0
		if id == env.impaired {
			wantStatus, wantIO, wantEvents = types.VolumeStatusInfoStatusImpaired, "failed", 1
		}
		if vs.Status != wantStatus || vs.Details[0].Name != types.VolumeStatusNameIoEnabled || aws.ToString(vs.Details[0].Status) != wantIO ||
			vs.Details[1].Name != types.VolumeStatusNameIoPerformance || len(it.Events) != wantEvents {
			t.Errorf("%s: status %s, details %+v, %d events; want %s, io-enabled %s, %d events", id, vs.Status, vs.Details, len(it.Events), wantStatus, wantIO, wantEvents)
		}
		for _, ev := range it.Events {
			if aws.ToString(ev.EventType) != "potential-data-inconsistency" || !strings.Contains(aws.ToString(ev.Description), env.pack) ||
				!strings.HasPrefix(aws.ToString(ev.EventId), "evol-") || ev.NotBefore == nil || time.Since(*ev.NotBefore) > time.Hour {
				t.Errorf("%s: event %+v", id, ev)
			}
		}
	}
}
