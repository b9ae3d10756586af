package control

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

// testEnv is a real engine behind a real server on a unix socket.
type testEnv struct {
	engine *cow.Engine
	socket string
	client *Client
	raw    *http.Client // for hand-written requests
}

// rootCaller authenticates every request as root, for tests that drive
// the handler without a socket.
func rootCaller(*http.Request, []byte) (Caller, *APIError) {
	return Caller{Unix: true, UID: 0, GID: 0}, nil
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// socketDir returns a short temporary directory: socket paths are
// limited to 108 bytes, which t.TempDir() can exceed.
func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cvctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startServer(t testing.TB, b Backend) (socket string) {
	t.Helper()
	return startServerWith(t, b, Options{})
}

func startServerWith(t testing.TB, b Backend, opts Options) (socket string) {
	t.Helper()
	socket = filepath.Join(socketDir(t), "run", "cowvol.sock")
	ln, err := ListenUnix(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Logger = quietLogger()
	srv := NewServer(b, opts)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return socket
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvWith(t, cow.Options{}, Options{})
}

// newTestEnvWith is newTestEnv with engine and server options (DataDir and
// the loggers are set here).
func newTestEnvWith(t testing.TB, engOpts cow.Options, opts Options) *testEnv {
	t.Helper()
	engOpts.DataDir = t.TempDir()
	engOpts.Logger = quietLogger()
	if engOpts.Keys == nil {
		keys, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), DefaultRegion, DefaultAccountID)
		if err != nil {
			t.Fatal(err)
		}
		engOpts.Keys = keys
	}
	eng, err := cow.Open(engOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Close(); err != nil {
			t.Errorf("engine Close: %v", err)
		}
	})
	socket := startServerWith(t, eng, opts)
	c := NewClient(socket)
	t.Cleanup(c.Close)
	return &testEnv{
		engine: eng,
		socket: socket,
		client: c,
		raw: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		}},
	}
}

// post sends body as a form and returns status, headers and body.
func (e *testEnv) post(t testing.TB, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := e.raw.Post("http://cowvol/", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (e *testEnv) create(t testing.TB, in CreateVolumeInput) Volume {
	t.Helper()
	v, err := e.client.CreateVolume(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const v = "&Version=2016-11-15"

func TestVolumeLifecycle(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	before := time.Now().UTC().Truncate(time.Millisecond)
	vol := env.create(t, CreateVolumeInput{Size: 4, Tags: []Tag{{"env", "prod"}, {"empty", ""}}})
	if !cow.ValidVolumeID(vol.VolumeID) {
		t.Errorf("VolumeID = %q", vol.VolumeID)
	}
	if vol.Size != 4 || vol.SizeBytes != 4<<30 || vol.BlockSize != cow.DefaultBlockSize {
		t.Errorf("size = %d GiB, %d bytes, block %d", vol.Size, vol.SizeBytes, vol.BlockSize)
	}
	if vol.Status != "available" || vol.AvailabilityZone != DefaultAvailabilityZone || vol.VolumeType != "standard" ||
		vol.Encrypted || vol.MultiAttachEnabled || vol.SnapshotID != "" || vol.Attachments != nil {
		t.Errorf("volume = %+v", vol)
	}
	if vol.CreateTime.Before(before) || vol.CreateTime.After(time.Now()) {
		t.Errorf("CreateTime = %v, not between %v and now", vol.CreateTime, before)
	}
	if len(vol.Tags) != 2 || vol.Tags[0] != (Tag{"env", "prod"}) || vol.Tags[1] != (Tag{"empty", ""}) {
		t.Errorf("Tags = %v", vol.Tags)
	}

	small := env.create(t, CreateVolumeInput{SizeBytes: 512 << 20, BlockSize: 4096})
	if small.Size != 1 || small.SizeBytes != 512<<20 || small.BlockSize != 4096 {
		t.Errorf("512 MiB volume: %d GiB, %d bytes, block %d", small.Size, small.SizeBytes, small.BlockSize)
	}

	out, err := env.client.DescribeVolumes(ctx, DescribeVolumesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Volumes) != 2 || out.NextToken != "" {
		t.Fatalf("DescribeVolumes = %+v", out)
	}
	for _, d := range out.Volumes {
		if d.Attachments == nil || len(d.Attachments.Items) != 0 {
			t.Errorf("%s: attachmentSet = %v, want present and empty", d.VolumeID, d.Attachments)
		}
		want := vol
		if d.VolumeID == small.VolumeID {
			want = small
		}
		d.Attachments = nil
		if d.VolumeID != want.VolumeID || d.Size != want.Size || !d.CreateTime.Equal(want.CreateTime.Time) ||
			len(d.Tags) != len(want.Tags) || d.Status != want.Status {
			t.Errorf("described %+v, created %+v", d, want)
		}
	}

	if err := env.client.DeleteVolume(ctx, vol.VolumeID, false); err != nil {
		t.Fatal(err)
	}
	out, err = env.client.DescribeVolumes(ctx, DescribeVolumesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Volumes) != 1 || out.Volumes[0].VolumeID != small.VolumeID {
		t.Fatalf("after delete: %+v", out.Volumes)
	}
	err = env.client.DeleteVolume(ctx, vol.VolumeID, false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeInvalidVolumeNotFound || ae.StatusCode != 400 || ae.RequestID == "" ||
		ae.Message != "The volume '"+vol.VolumeID+"' does not exist." {
		t.Fatalf("second delete: %#v", err)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestWireFormat checks the bytes SDKs parse.
func TestWireFormat(t *testing.T) {
	env := newTestEnv(t)
	status, h, body := env.post(t, "Action=CreateVolume"+v+"&Size=1")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/xml;charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	id := h.Get("X-Amzn-RequestId")
	if !uuidRE.MatchString(id) {
		t.Errorf("X-Amzn-RequestId = %q", id)
	}
	for _, want := range []string{
		`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<CreateVolumeResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + id + `</requestId><volumeId>vol-`,
		`<size>1</size><snapshotId></snapshotId><availabilityZone>us-east-1a</availabilityZone><status>available</status><createTime>`,
		`<volumeType>standard</volumeType><encrypted>false</encrypted><multiAttachEnabled>false</multiAttachEnabled><sizeBytes>1073741824</sizeBytes><blockSize>65536</blockSize></CreateVolumeResponse>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s\nbody: %s", want, body)
		}
	}
	if strings.Contains(body, "tagSet") || strings.Contains(body, "attachmentSet") {
		t.Errorf("CreateVolume without tags has tagSet or attachmentSet: %s", body)
	}
	if !regexp.MustCompile(`<createTime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z</createTime>`).MatchString(body) {
		t.Errorf("createTime format: %s", body)
	}

	status, _, body = env.post(t, "Action=CreateVolume"+v+"&Size=1&TagSpecification.1.ResourceType=volume"+
		"&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value=prod&TagSpecification.1.Tag.2.Key=%3Cx%3E")
	if want := `<tagSet><item><key>env</key><value>prod</value></item><item><key>&lt;x&gt;</key><value></value></item></tagSet>`; status != 200 || !strings.Contains(body, want) {
		t.Errorf("tags: %d %s\nwant %s", status, body, want)
	}

	// GET works as well as POST.
	resp, err := env.raw.Get("http://cowvol/?Action=DescribeVolumes" + v)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `<volumeSet><item><volumeId>vol-`) ||
		!strings.Contains(string(b), `<attachmentSet></attachmentSet>`) {
		t.Errorf("GET DescribeVolumes: %d %s", resp.StatusCode, b)
	}

	// An empty volumeSet is still there.
	status, _, body = env.post(t, "Action=DescribeVolumes"+v+"&Filter.1.Name=status&Filter.1.Value.1=in-use")
	if status != 200 || !strings.Contains(body, "<volumeSet></volumeSet>") || strings.Contains(body, "nextToken") {
		t.Errorf("empty DescribeVolumes: %d %s", status, body)
	}

	// Errors.
	status, h, body = env.post(t, "Action=DeleteVolume"+v+"&VolumeId=vol-00000000000000000")
	id = h.Get("X-Amzn-RequestId")
	want := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<Response><Errors><Error><Code>InvalidVolume.NotFound</Code><Message>The volume &#39;vol-00000000000000000&#39; does not exist.</Message></Error></Errors><RequestID>` +
		id + `</RequestID></Response>`
	if status != 400 || body != want || h.Get("Content-Type") != "text/xml;charset=UTF-8" {
		t.Errorf("error answer: %d %s\nwant %s", status, body, want)
	}
}

func TestRequestErrors(t *testing.T) {
	env := newTestEnv(t)
	existing := env.create(t, CreateVolumeInput{Size: 1}).VolumeID
	const missing = "vol-00000000000000000"
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		msg    string // substring of the message
	}{
		{"no action", "Version=2016-11-15", 400, CodeMissingAction, "Action"},
		{"unknown action", "Action=RunInstances" + v, 400, CodeInvalidAction, "The action RunInstances is not valid for this web service."},
		{"no version", "Action=DescribeVolumes", 400, CodeMissingParameter, "Version"},
		{"other version", "Action=DescribeVolumes&Version=2014-01-01", 400, CodeNoSuchVersion, "2014-01-01"},
		{"unknown parameter", "Action=DescribeVolumes" + v + "&Foo=1", 400, CodeUnknownParameter, "Foo"},
		{"signature params ignored", "Action=DescribeVolumes" + v + "&AWSAccessKeyId=x&X-Amz-Date=y", 200, "", ""},
		{"invalid utf-8", "Action=DescribeVolumes" + v + "&VolumeId.1=%ff", 400, CodeInvalidParameterValue, "UTF-8"},
		{"duplicate parameter", "Action=DescribeVolumes" + v + "&MaxResults=5&MaxResults=6", 400, CodeInvalidParameterValue, "more than once"},
		{"bad boolean", "Action=DescribeVolumes" + v + "&DryRun=yes", 400, CodeInvalidParameterValue, "DryRun"},

		{"create: no size", "Action=CreateVolume" + v, 400, CodeMissingParameter, "Size"},
		{"create: both sizes", "Action=CreateVolume" + v + "&Size=1&SizeBytes=1073741824", 400, CodeInvalidParameterCombination, "SizeBytes"},
		{"create: size 0", "Action=CreateVolume" + v + "&Size=0", 400, CodeInvalidParameterValue, "from 1 to 65536 GiB"},
		{"create: size too big", "Action=CreateVolume" + v + "&Size=65537", 400, CodeInvalidParameterValue, "from 1 to 65536 GiB"},
		{"create: size not a number", "Action=CreateVolume" + v + "&Size=4GiB", 400, CodeInvalidParameterValue, "Size"},
		{"create: bytes not a block multiple", "Action=CreateVolume" + v + "&SizeBytes=1000", 400, CodeInvalidParameterValue, "multiple of the block size"},
		{"create: bad block size", "Action=CreateVolume" + v + "&Size=1&BlockSize=3000", 400, CodeInvalidParameterValue, "block size"},
		{"create: huge block size", "Action=CreateVolume" + v + "&Size=1&BlockSize=99999999999999", 400, CodeInvalidParameterValue, "block size"},
		{"create: malformed snapshot", "Action=CreateVolume" + v + "&SnapshotId=snap-x", 400, CodeInvalidSnapshotIDMalformed, `"snap-x"`},
		{"create: from a missing snapshot", "Action=CreateVolume" + v + "&SnapshotId=snap-0123456789abcdef0", 400, CodeInvalidSnapshotNotFound, "snap-0123456789abcdef0"},
		{"create: encrypted, dry run", "Action=CreateVolume" + v + "&Size=1&Encrypted=true&DryRun=true", 412, CodeDryRunOperation, ""},
		{"create: KmsKeyId without Encrypted", "Action=CreateVolume" + v + "&Size=1&KmsKeyId=alias/x", 400, CodeInvalidParameterDependency, "KmsKeyId"},
		{"create: malformed KmsKeyId", "Action=CreateVolume" + v + "&Size=1&Encrypted=true&KmsKeyId=not-a-key", 400, CodeInvalidParameterValue, "KmsKeyId"},
		{"create: no such KMS key", "Action=CreateVolume" + v + "&Size=1&Encrypted=true&KmsKeyId=alias/nope", 400, CodeInvalidKMSKeyNotFound, "alias/nope"},
		{"create: no such KMS key, dry run", "Action=CreateVolume" + v + "&Size=1&Encrypted=true&KmsKeyId=alias/nope&DryRun=true", 400, CodeInvalidKMSKeyNotFound, "alias/nope"},
		{"copy: no source", "Action=CopySnapshot" + v + "&SourceRegion=us-east-1", 400, CodeMissingParameter, "SourceSnapshotId"},
		{"copy: malformed source", "Action=CopySnapshot" + v + "&SourceSnapshotId=snap-x", 400, CodeInvalidSnapshotIDMalformed, "snap-x"},
		{"copy: missing source", "Action=CopySnapshot" + v + "&SourceSnapshotId=snap-0123456789abcdef0&SourceRegion=us-east-1", 400, CodeInvalidSnapshotNotFound, "snap-0123456789abcdef0"},
		{"copy: missing source, dry run", "Action=CopySnapshot" + v + "&SourceSnapshotId=snap-0123456789abcdef0&DryRun=true", 400, CodeInvalidSnapshotNotFound, "snap-0123456789abcdef0"},
		{"copy: other region", "Action=CopySnapshot" + v + "&SourceSnapshotId=snap-0123456789abcdef0&SourceRegion=eu-west-1", 400, CodeInvalidParameterValue, "eu-west-1"},
		{"copy: to an Outpost", "Action=CopySnapshot" + v + "&SourceSnapshotId=snap-0123456789abcdef0&DestinationOutpostArn=arn:aws:outposts:us-east-1:123456789012:outpost/op-0", 400, CodeInvalidParameterValue, "Outpost"},
		{"copy: timed", "Action=CopySnapshot" + v + "&SourceSnapshotId=snap-0123456789abcdef0&CompletionDurationMinutes=60", 400, CodeInvalidParameterValue, "CompletionDurationMinutes"},
		{"create: not encrypted", "Action=CreateVolume" + v + "&Size=1&Encrypted=false&DryRun=true", 412, CodeDryRunOperation, ""},
		{"create: other zone", "Action=CreateVolume" + v + "&Size=1&AvailabilityZone=local", 400, CodeInvalidParameterValue, "Invalid availability zone: [local]. Valid zones: us-east-1a."},
		{"create: other zone ID", "Action=CreateVolume" + v + "&Size=1&AvailabilityZoneId=use1-az2", 400, CodeInvalidParameterValue, "use1-az2"},
		{"create: zone and zone ID", "Action=CreateVolume" + v + "&Size=1&AvailabilityZone=us-east-1a&AvailabilityZoneId=use1-az1", 400, CodeInvalidParameterCombination, "AvailabilityZoneId"},
		{"create: our zone ID", "Action=CreateVolume" + v + "&Size=1&AvailabilityZoneId=use1-az1&DryRun=true", 412, CodeDryRunOperation, ""},
		{"create: our zone", "Action=CreateVolume" + v + "&Size=1&AvailabilityZone=us-east-1a&VolumeType=standard&DryRun=true", 412, CodeDryRunOperation, ""},
		{"create: gp3", "Action=CreateVolume" + v + "&Size=1&VolumeType=gp3", 400, CodeInvalidParameterValue, "gp3"},
		{"create: iops", "Action=CreateVolume" + v + "&Size=1&Iops=3000", 400, CodeUnknownParameter, "Iops"},
		{"create: snapshot tags", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k", 400, CodeInvalidParameterValue, "'snapshot' is not a valid taggable resource type"},
		{"create: no resource type", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.Tag.1.Key=k", 400, CodeInvalidParameterValue, "resource type"},
		{"create: volume twice", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.ResourceType=volume&TagSpecification.2.ResourceType=volume", 400, CodeInvalidParameterValue, "more than once"},
		{"create: tag without key", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Value=v", 400, CodeMissingParameter, "TagSpecification.1.Tag.1.Key"},
		{"create: duplicate tag keys", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.2.Key=k", 400, CodeInvalidParameterValue, "duplicate tag key"},
		{"create: bad tag index", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.01.Key=k", 400, CodeInvalidParameterValue, "TagSpecification.1.Tag.01.Key"},
		{"create: unknown tag field", "Action=CreateVolume" + v + "&Size=1&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Colour=red", 400, CodeUnknownParameter, "Colour"},
		{"create: long token", "Action=CreateVolume" + v + "&Size=1&ClientToken=" + strings.Repeat("t", 65), 400, CodeInvalidParameterValue, "64"},
		{"create: dry run", "Action=CreateVolume" + v + "&Size=1&DryRun=true", 412, CodeDryRunOperation, "Request would have succeeded, but DryRun flag is set."},

		{"describe: malformed id", "Action=DescribeVolumes" + v + "&VolumeId.1=vol-1", 400, CodeInvalidVolumeIDMalformed, `Invalid id: "vol-1" (expecting "vol-...")`},
		{"describe: missing id", "Action=DescribeVolumes" + v + "&VolumeId.1=" + existing + "&VolumeId.2=" + missing, 400, CodeInvalidVolumeNotFound, "The volume '" + missing + "' does not exist."},
		{"describe: two missing", "Action=DescribeVolumes" + v + "&VolumeId.1=" + missing + "&VolumeId.2=vol-11111111111111111", 400, CodeInvalidVolumeNotFound, "do not exist"},
		{"describe: unknown filter", "Action=DescribeVolumes" + v + "&Filter.1.Name=colour&Filter.1.Value.1=red", 400, CodeInvalidParameterValue, "The filter 'colour' is invalid"},
		{"describe: filter without name", "Action=DescribeVolumes" + v + "&Filter.1.Value.1=red", 400, CodeMissingParameter, "Filter.1.Name"},
		{"describe: filter without value", "Action=DescribeVolumes" + v + "&Filter.1.Name=status", 400, CodeInvalidParameterValue, "at least one value"},
		{"describe: max results low", "Action=DescribeVolumes" + v + "&MaxResults=4", 400, CodeInvalidParameterValue, "maxResults"},
		{"describe: max results 1000, as the aws CLI sends: 500", "Action=DescribeVolumes" + v + "&MaxResults=1000", 200, "", existing},
		{"describe: max results huge", "Action=DescribeVolumes" + v + "&MaxResults=99999999999", 200, "", existing},
		{"describe: max results with ids", "Action=DescribeVolumes" + v + "&MaxResults=5&VolumeId.1=" + existing, 400, CodeInvalidParameterCombination, "maxResults"},
		{"describe: bad token", "Action=DescribeVolumes" + v + "&MaxResults=5&NextToken=garbage", 400, CodeInvalidPaginationToken, "garbage"},
		{"describe: dry run", "Action=DescribeVolumes" + v + "&DryRun=true", 412, CodeDryRunOperation, ""},
		{"describe: by id", "Action=DescribeVolumes" + v + "&VolumeId.1=" + existing + "&VolumeId.2=" + existing, 200, "", existing},

		{"delete: no id", "Action=DeleteVolume" + v, 400, CodeMissingParameter, "VolumeId"},
		{"delete: malformed id", "Action=DeleteVolume" + v + "&VolumeId=vol-XYZ", 400, CodeInvalidVolumeIDMalformed, "vol-XYZ"},
		{"delete: missing", "Action=DeleteVolume" + v + "&VolumeId=" + missing, 400, CodeInvalidVolumeNotFound, missing},
		{"delete: dry run missing", "Action=DeleteVolume" + v + "&VolumeId=" + missing + "&DryRun=true", 400, CodeInvalidVolumeNotFound, missing},
		{"delete: dry run", "Action=DeleteVolume" + v + "&VolumeId=" + existing + "&DryRun=true", 412, CodeDryRunOperation, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := env.post(t, tt.body)
			if status != tt.status {
				t.Fatalf("status = %d, want %d: %s", status, tt.status, body)
			}
			if tt.code == "" {
				if !strings.Contains(body, tt.msg) {
					t.Errorf("body lacks %q: %s", tt.msg, body)
				}
				return
			}
			var er errorResponse
			if err := xml.Unmarshal([]byte(body), &er); err != nil || len(er.Errors) != 1 {
				t.Fatalf("error body %s: %v", body, err)
			}
			if er.Errors[0].Code != tt.code || !strings.Contains(er.Errors[0].Message, tt.msg) {
				t.Errorf("got %s %q, want %s containing %q", er.Errors[0].Code, er.Errors[0].Message, tt.code, tt.msg)
			}
		})
	}
	// Nothing above created or deleted a volume.
	out, err := env.client.DescribeVolumes(context.Background(), DescribeVolumesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Volumes) != 1 || out.Volumes[0].VolumeID != existing {
		t.Errorf("volumes after failed and dry-run requests: %+v", out.Volumes)
	}
}

func TestMethodAndBodyLimits(t *testing.T) {
	env := newTestEnv(t)
	req, _ := http.NewRequest(http.MethodPut, "http://cowvol/?Action=DescribeVolumes"+v, nil)
	resp, err := env.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
	big := "Action=DescribeVolumes" + v + "&NextToken=" + strings.Repeat("a", MaxBodyBytes)
	status, _, body := env.post(t, big)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, CodeRequestEntityTooLarge) {
		t.Errorf("large body: %d %s", status, body)
	}
}

// TestStuckClients: clients that connect and send half a request, or
// nothing, neither block others nor hold their connection for ever.
func TestStuckClients(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{}, Options{ReadHeaderTimeout: 300 * time.Millisecond})
	var stuck []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("unix", env.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 0 {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: cowvol\r\nContent-Le") // and nothing more
		}
		stuck = append(stuck, c)
	}
	if status, _, body := env.post(t, "Action=DescribeVolumes"+v); status != http.StatusOK {
		t.Fatalf("with 20 stuck clients connected: %d %s", status, body)
	}
	for i, c := range stuck {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("stuck client %d: the server did not close its connection: %v", i, err)
		}
		// net/http answers a half-sent request 400 before the close (it
		// never became an API request); an idle connection is just closed.
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
			t.Errorf("stuck client %d got %q", i, b)
		}
	}
}

func TestVolumeInUse(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	h, err := env.engine.OpenVolume(vol.VolumeID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := env.client.DescribeVolumes(ctx, DescribeVolumesInput{VolumeIDs: []string{vol.VolumeID}})
	if err != nil || len(out.Volumes) != 1 || out.Volumes[0].Status != "in-use" {
		t.Fatalf("describe open volume: %+v, %v", out, err)
	}
	for _, dry := range []bool{true, false} {
		err = env.client.DeleteVolume(ctx, vol.VolumeID, dry)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != CodeVolumeInUse || !strings.Contains(ae.Message, vol.VolumeID) {
			t.Errorf("delete open volume (dry run %v): %v", dry, err)
		}
	}
	h.Close()
	if err := env.client.DeleteVolume(ctx, vol.VolumeID, true); !isCode(err, CodeDryRunOperation) {
		t.Errorf("dry-run delete of closed volume: %v", err)
	}
	if err := env.client.DeleteVolume(ctx, vol.VolumeID, false); err != nil {
		t.Errorf("delete closed volume: %v", err)
	}
}

func isCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

func TestDescribePagination(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	created := map[string]bool{}
	for range 12 {
		created[env.create(t, CreateVolumeInput{Size: 1}).VolumeID] = true
	}
	var seen []string
	in := DescribeVolumesInput{MaxResults: 5}
	var pages int
	for {
		out, err := env.client.DescribeVolumes(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(out.Volumes) > 5 {
			t.Fatalf("page of %d", len(out.Volumes))
		}
		for _, vol := range out.Volumes {
			seen = append(seen, vol.VolumeID)
		}
		if out.NextToken == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if pages != 3 || len(seen) != 12 {
		t.Fatalf("%d pages, %d volumes", pages, len(seen))
	}
	for i, id := range seen {
		if !created[id] || (i > 0 && seen[i-1] >= id) {
			t.Fatalf("volumes not each once in ID order: %v", seen)
		}
	}
	// A page boundary survives the deletion of the volume it names.
	first, err := env.client.DescribeVolumes(ctx, DescribeVolumesInput{MaxResults: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.client.DeleteVolume(ctx, first.Volumes[4].VolumeID, false); err != nil {
		t.Fatal(err)
	}
	next, err := env.client.DescribeVolumes(ctx, DescribeVolumesInput{MaxResults: 5, NextToken: first.NextToken})
	if err != nil {
		t.Fatal(err)
	}
	if next.Volumes[0].VolumeID != seen[5] {
		t.Errorf("next page starts at %s, want %s", next.Volumes[0].VolumeID, seen[5])
	}
}

func TestDescribeFilters(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	a := env.create(t, CreateVolumeInput{Size: 1, Tags: []Tag{{"env", "prod"}}})
	b := env.create(t, CreateVolumeInput{Size: 2, Tags: []Tag{{"env", "dev"}, {"team", "db"}}})
	c := env.create(t, CreateVolumeInput{SizeBytes: 64 << 10})
	tests := []struct {
		name    string
		filters []Filter
		want    []string
	}{
		{"tag", []Filter{{"tag:env", []string{"prod"}}}, []string{a.VolumeID}},
		{"tag wildcard", []Filter{{"tag:env", []string{"*"}}}, []string{a.VolumeID, b.VolumeID}},
		{"tag-key", []Filter{{"tag-key", []string{"team"}}}, []string{b.VolumeID}},
		{"size", []Filter{{"size", []string{"1"}}}, []string{a.VolumeID, c.VolumeID}},
		{"size and tag", []Filter{{"size", []string{"1"}}, {"tag-key", []string{"env"}}}, []string{a.VolumeID}},
		{"volume-id", []Filter{{"volume-id", []string{b.VolumeID, c.VolumeID}}}, []string{b.VolumeID, c.VolumeID}},
		{"status", []Filter{{"status", []string{"available"}}}, []string{a.VolumeID, b.VolumeID, c.VolumeID}},
		{"create-time", []Filter{{"create-time", []string{a.CreateTime.String()}}}, []string{a.VolumeID}},
		{"none", []Filter{{"status", []string{"deleting"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := env.client.DescribeVolumes(ctx, DescribeVolumesInput{Filters: tt.filters})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, vol := range out.Volumes {
				got = append(got, vol.VolumeID)
			}
			want := append([]string(nil), tt.want...)
			sortStrings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j-1] > s[j]; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func TestCreateVolumeIdempotent(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	in := CreateVolumeInput{Size: 1, ClientToken: "token-1"}
	first := env.create(t, in)
	again := env.create(t, in)
	if again.VolumeID != first.VolumeID {
		t.Errorf("same token: %s then %s", first.VolumeID, again.VolumeID)
	}
	in.Size = 2
	if _, err := env.client.CreateVolume(ctx, in); !isCode(err, CodeIdempotentParameterMismatch) {
		t.Errorf("same token, other size: %v", err)
	}
}

// panicBackend is a test double whose every call panics: the server must
// answer InternalError and keep serving.
type panicBackend struct{}

func (panicBackend) CreateVolume(context.Context, cow.CreateVolumeParams) (cow.VolumeInfo, error) {
	panic("boom")
}
func (panicBackend) DescribeVolumes(context.Context) ([]cow.VolumeInfo, error) { panic("boom") }
func (panicBackend) DeleteVolume(context.Context, string) error {
	return errors.New("disk on fire")
}
func (panicBackend) CreateSnapshot(context.Context, cow.CreateSnapshotParams) (cow.SnapshotInfo, error) {
	panic("boom")
}
func (panicBackend) DescribeSnapshots(context.Context) ([]cow.SnapshotInfo, error) { panic("boom") }
func (panicBackend) DeleteSnapshot(context.Context, string) error                  { panic("boom") }
func (panicBackend) SnapshotInfo(string) (cow.SnapshotInfo, error)                 { panic("boom") }
func (panicBackend) OutpostArn() string                                            { return "" }
func (panicBackend) CopySnapshot(context.Context, cow.CopySnapshotParams) (cow.SnapshotInfo, error) {
	panic("boom")
}
func (panicBackend) CheckVolumeEncryption(context.Context, cow.CreateVolumeParams) error {
	panic("boom")
}
func (panicBackend) CheckCopySnapshot(context.Context, cow.CopySnapshotParams) error { panic("boom") }

func TestInternalErrors(t *testing.T) {
	c := NewClient(startServer(t, panicBackend{}))
	defer c.Close()
	ctx := context.Background()
	for i := 0; i < 2; i++ { // and the server survives
		_, err := c.DescribeVolumes(ctx, DescribeVolumesInput{})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != CodeInternalError || ae.StatusCode != 500 || ae.RequestID == "" {
			t.Fatalf("panicking backend: %#v", err)
		}
	}
	err := c.DeleteVolume(ctx, "vol-0123456789abcdef0", false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeInternalError || strings.Contains(ae.Message, "fire") {
		t.Fatalf("failing backend: %#v (the cause must not leak)", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	sock := filepath.Join(socketDir(t), "none.sock")
	c := NewClient(sock)
	defer c.Close()
	_, err := c.DescribeVolumes(context.Background(), DescribeVolumesInput{})
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Socket != sock || !strings.Contains(err.Error(), sock) {
		t.Fatalf("err = %#v", err)
	}
}
