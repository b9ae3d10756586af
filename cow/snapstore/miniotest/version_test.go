package miniotest

import (
	"os"
	"strings"
	"testing"
)

// TestPrereqsInstallThisVersion keeps the MinIO that `make prereqs`
// installs (tools/prereqs.sh) the one this package is pinned to.
func TestPrereqsInstallThisVersion(t *testing.T) {
	b, err := os.ReadFile("../../../tools/prereqs.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nMINIO_VERSION="+Version+" ") {
		t.Errorf("tools/prereqs.sh does not pin MINIO_VERSION=%s", Version)
	}
}
