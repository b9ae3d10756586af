package control

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cowvol/cowvol/cow"
)

// TestStoreFullAnswer: a snapshot store that refuses a write for lack of
// space is answered InsufficientVolumeCapacity with what the store said,
// not a bare InternalError.
func TestStoreFullAnswer(t *testing.T) {
	err := fmt.Errorf("hold snapshot snap-0123456789abcdef0: put holds/v/s: %w: the S3 server answered 507 XMinioStorageFull: Storage backend has reached its minimum free drive threshold", cow.ErrStoreFull)
	ae, ok := backendError(fmt.Errorf("create volume: %w", err), "snap-0123456789abcdef0")
	if !ok || ae.Code != CodeInsufficientVolumeCapacity || !strings.Contains(ae.Message, "507 XMinioStorageFull") {
		t.Fatalf("store full answered %+v", ae)
	}
}
