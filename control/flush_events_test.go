package control

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/cowvol/cowvol/cow"
)

// TestFlushRetryEvent: while a snapshot's flush keeps failing, its volume
// has a snapshot-flush-retrying event (and stays ok); once the store
// works and the snapshot completes, the event is gone.
func TestFlushRetryEvent(t *testing.T) {
	store := newFailingStore(t)
	env := newTestEnvWith(t, cow.Options{SnapshotStore: store, FlushDeadline: time.Hour, FlushRetryBase: 10 * time.Millisecond}, Options{})
	c := sdkClientOf(env)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	s := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	events := func() (status string, types, descs []string) {
		t.Helper()
		out, err := c.DescribeVolumeStatus(ctx, &awsec2.DescribeVolumeStatusInput{VolumeIds: []string{vol.VolumeID}})
		if err != nil || len(out.VolumeStatuses) != 1 {
			t.Fatalf("DescribeVolumeStatus: %+v, %v", out, err)
		}
		vs := out.VolumeStatuses[0]
		for _, e := range vs.Events {
			types = append(types, aws.ToString(e.EventType))
			descs = append(descs, aws.ToString(e.Description))
		}
		return string(vs.VolumeStatus.Status), types, descs
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, types, descs := events()
		if len(types) == 1 {
			if status != "ok" || types[0] != eventFlushRetrying || !strings.Contains(descs[0], s.SnapshotID) || !strings.Contains(descs[0], "injected") {
				t.Fatalf("while the flush fails: %s %v %v", status, types, descs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flush event: %s %v", status, types)
		}
		time.Sleep(10 * time.Millisecond)
	}
	store.fail.Store(false)
	env.waitCompleted(t, s.SnapshotID)
	if _, types, _ := events(); len(types) != 0 {
		t.Errorf("after the snapshot completed: events %v", types)
	}
}
