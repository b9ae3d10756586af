package control

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestMaxResultsClamped: a MaxResults above a Describe call's largest
// (500 for DescribeVolumes, 1000 for DescribeSnapshots and
// DescribeVolumeStatus) is answered with pages of that largest, as EC2
// does; the aws CLI sends MaxResults=1000 by default.
func TestMaxResultsClamped(t *testing.T) {
	const n = 1203
	vols := make([]Volume, n)
	snaps := make([]Snapshot, n)
	statuses := make([]VolumeStatusItem, n)
	for i := range n {
		vols[i].VolumeID = fmt.Sprintf("vol-%017x", i+1)
		snaps[i].SnapshotID = fmt.Sprintf("snap-%017x", i+1)
		statuses[i].VolumeID = vols[i].VolumeID
	}
	for _, tc := range []struct {
		name       string
		maxResults string
		page       func(p *params) (int, string, *APIError)
		want       int
	}{
		{"volumes, 1000", "1000", pageOf(volumeKind, vols), 500},
		{"volumes, 501", "501", pageOf(volumeKind, vols), 500},
		{"volumes, 500", "500", pageOf(volumeKind, vols), 500},
		{"volumes, 7", "7", pageOf(volumeKind, vols), 7},
		{"snapshots, 1000", "1000", pageOf(snapshotKind, snaps), 1000},
		{"snapshots, 5000", "5000", pageOf(snapshotKind, snaps), 1000},
		{"volume statuses, 1001", "1001", pageOf(volumeStatusKind, statuses), 1000},
	} {
		r := httptest.NewRequest("GET", "/?"+url.Values{"MaxResults": {tc.maxResults}}.Encode(), nil)
		p, e := parseParams(r, nil)
		if e != nil {
			t.Fatal(e)
		}
		got, next, e := tc.page(p)
		if e != nil || got != tc.want || next == "" {
			t.Errorf("%s: a page of %d, next %q, %v; want %d and a NextToken", tc.name, got, next, e, tc.want)
		}
	}
}

// pageOf answers the first page of items for a request's parameters.
func pageOf[T any](k *describeKind[T], items []T) func(p *params) (int, string, *APIError) {
	return func(p *params) (int, string, *APIError) {
		r, e := k.read(p)
		if e != nil {
			return 0, "", e
		}
		page, next, e := k.answer(items, r, nil)
		return len(page), next, e
	}
}
