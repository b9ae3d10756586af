package control

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

// FuzzServeQuery feeds arbitrary request bodies, as POST forms and as GET
// query strings, to the handler over a real engine. The server must not
// panic, must answer well-formed XML (an EC2 answer or an EC2 error), and
// must not answer 5xx: with a healthy engine every failure is the client's.
func FuzzServeQuery(f *testing.F) {
	for _, seed := range []string{
		"Action=DescribeVolumes&Version=2016-11-15",
		"Action=CreateVolume&Version=2016-11-15&Size=1&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
		"Action=CreateVolume&Version=2016-11-15&SizeBytes=65536&BlockSize=4096&DryRun=true",
		"Action=DescribeVolumes&Version=2016-11-15&Filter.1.Name=tag:k&Filter.1.Value.1=*&MaxResults=5",
		"Action=DeleteVolume&Version=2016-11-15&VolumeId=vol-0123456789abcdef0",
		"Action=DescribeVolumes&Version=2016-11-15&VolumeId.01=x",
		"Action=DescribeVolumeStatus&Version=2016-11-15&Filter.1.Name=event.event-type&Filter.1.Value.1=potential-*&MaxResults=1000",
		"Action=%ff&Version=\x00",
		"Action=CreateSnapshot&Version=2016-11-15&VolumeId=vol-0123456789abcdef0&Description=d&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k",
		"Action=CreateSnapshot&Version=2016-11-15&VolumeId=vol-0123456789abcdef0&OutpostArn=arn:aws:outposts:us-east-1:123456789012:outpost/op-0&DryRun=true",
		"Action=DescribeSnapshots&Version=2016-11-15&Owner.1=self&Filter.1.Name=status&Filter.1.Value.1=*&MaxResults=5",
		"Action=DescribeSnapshots&Version=2016-11-15&SnapshotId.1=snap-0123456789abcdef0",
		"Action=DeleteSnapshot&Version=2016-11-15&SnapshotId=snap-0123456789abcdef0",
		"Action=CreateVolume&Version=2016-11-15&SnapshotId=snap-0123456789abcdef0",
		"Action=CreateVolume&Version=2016-11-15&Size=1&Encrypted=true&KmsKeyId=alias/aws/ebs",
		"Action=CopySnapshot&Version=2016-11-15&SourceSnapshotId=snap-0123456789abcdef0&SourceRegion=us-east-1&Encrypted=true&KmsKeyId=alias/k&Description=d",
		"Action=DescribeVolumes&Version=2016-11-15&MaxResults=1000",
		"Action=DescribeSnapshots&Version=2016-11-15&MaxResults=99999999999999999999",
		"Action=CreateVolume&Version=2016-11-15&Size=1&AvailabilityZoneId=use1-az1",
		"Action=DescribeAvailabilityZones&Version=2016-11-15&ZoneName.1=us-east-1a&ZoneId.1=use1-az1&AllAvailabilityZones=true&Filter.1.Name=state&Filter.1.Value.1=available",
		"Action=DescribeAvailabilityZones&Version=2016-11-15&Filter.1.Name=zone-type&Filter.1.Value.1=*&DryRun=true",
		"Action=DescribeRegions&Version=2016-11-15&RegionName.1=us-east-1&AllRegions=true&Filter.1.Name=endpoint&Filter.1.Value.1=*",
		"Action=DescribeVolumeAttribute&Version=2016-11-15&VolumeId=vol-0123456789abcdef0&Attribute=autoEnableIO",
		"Action=DescribeSnapshotAttribute&Version=2016-11-15&SnapshotId=snap-0123456789abcdef0&Attribute=createVolumePermission&DryRun=true",
		"Action=ModifySnapshotAttribute&Version=2016-11-15&SnapshotId=snap-0123456789abcdef0&Attribute=createVolumePermission&CreateVolumePermission.Add.1.UserId=111122223333&CreateVolumePermission.Remove.1.Group=all",
		"Action=ModifySnapshotAttribute&Version=2016-11-15&SnapshotId=snap-0123456789abcdef0&OperationType=add&UserId.1=111122223333&UserGroup.1=all",
		"Action=CreateTags&Version=2016-11-15&ResourceId.1=vol-0123456789abcdef0&ResourceId.2=snap-0123456789abcdef0&Tag.1.Key=k&Tag.1.Value=v",
		"Action=DeleteTags&Version=2016-11-15&ResourceId.1=vol-0123456789abcdef0&Tag.1.Key=k&Tag.1.Value=&Tag.2.Key=aws:x",
		"Action=DescribeTags&Version=2016-11-15&Filter.1.Name=resource-type&Filter.1.Value.1=volume&MaxResults=5&NextToken=dm9sLTAxMjM0NTY3ODlhYmNkZWYwAGs",
		"Action=CreateSnapshots&Version=2016-11-15&InstanceSpecification.InstanceId=i-0123456789abcdef0&InstanceSpecification.ExcludeDataVolumeId.1=vol-0123456789abcdef0&CopyTagsFromSource=volume",
		"Action=CreateSnapshots&Version=2016-11-15&VolumeId.1=vol-0123456789abcdef0&Description=d&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k&DryRun=true",
		"Action=DescribeSnapshots&Version=2016-11-15&RestorableBy.1=self&RestorableBy.2=all",
	} {
		f.Add([]byte(seed))
	}
	keys, err := kms.OpenLocal(filepath.Join(f.TempDir(), "keyring"), DefaultRegion, DefaultAccountID)
	if err != nil {
		f.Fatal(err)
	}
	eng, err := cow.Open(cow.Options{DataDir: f.TempDir(), Logger: quietLogger(), Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	h := NewServer(eng, Options{Logger: quietLogger()}).handler(rootCaller)

	f.Fuzz(func(t *testing.T, body []byte) {
		post := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		get := httptest.NewRequest(http.MethodGet, "/", nil)
		get.URL.RawQuery = string(body)
		for _, r := range []*http.Request{post, get} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			checkAnswer(t, w)
		}
	})
}

func checkAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	body := w.Body.String()
	if w.Code >= 500 && !strings.Contains(body, "<Code>"+CodeInsufficientVolumeCapacity+"</Code>") {
		t.Fatalf("HTTP %d: %s", w.Code, body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/xml;charset=UTF-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.HasPrefix(body, xml.Header) {
		t.Fatalf("no XML declaration: %q", body)
	}
	d := xml.NewDecoder(strings.NewReader(body))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("malformed XML (%v): %q", err, body)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				ok := el.Name.Local == "Response"
				if w.Code == http.StatusOK {
					ok = el.Name.Local != "Response" && strings.HasSuffix(el.Name.Local, "Response")
				}
				if !ok {
					t.Fatalf("root element %s for HTTP %d", el.Name.Local, w.Code)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if roots != 1 || depth != 0 {
		t.Fatalf("%d root elements: %q", roots, body)
	}
}
