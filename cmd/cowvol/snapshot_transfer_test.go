package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeAt writes n random bytes (zeros when zero) at off of file path.
func writeAt(t *testing.T, path string, off int64, n int, zero bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if !zero {
		rand.Read(b)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	x, y := make([]byte, 4<<20), make([]byte, 4<<20)
	for off := int64(0); ; off += int64(len(x)) {
		n, errA := fa.ReadAt(x, off)
		m, _ := fb.ReadAt(y, off)
		if n != m || !bytes.Equal(x[:n], y[:m]) {
			t.Fatalf("%s and %s differ in the 4 MiB at %d", a, b, off)
		}
		if errA != nil {
			return
		}
	}
}

func snapshotIDOf(t *testing.T, out string) string {
	t.Helper()
	var v struct{ SnapshotId string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.SnapshotId == "" {
		t.Fatalf("no SnapshotId in %q", out)
	}
	return v.SnapshotId
}

// TestSnapshotImportExportDiff imports a sparse image, exports it back,
// imports a changed image as an increment, diffs and exports it on top of
// the first export.
func TestSnapshotImportExportDiff(t *testing.T) {
	sock := startDaemon(t)
	dir := t.TempDir()
	img, out := filepath.Join(dir, "disk.img"), filepath.Join(dir, "out.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	writeAt(t, img, 0, 3*directBlock+17, false)
	writeAt(t, img, 100*directBlock-5, 10, false)
	writeAt(t, img, 1<<30-4096, 4096, false)
	s1 := snapshotIDOf(t, runOK(t, "--socket", sock, "snapshot", "import", "--description", "first", img))
	runOK(t, "--socket", sock, "snapshot", "export", s1, out)
	sameFiles(t, img, out)

	var blocks struct {
		Blocks     []struct{ BlockIndex int64 }
		VolumeSize int64
		BlockSize  int
	}
	if err := json.Unmarshal([]byte(runOK(t, "--socket", sock, "list-snapshot-blocks", "--snapshot-id", s1)), &blocks); err != nil {
		t.Fatal(err)
	}
	var idx []int64
	for _, b := range blocks.Blocks {
		idx = append(idx, b.BlockIndex)
	}
	if want := []int64{0, 1, 2, 3, 99, 100, 2047}; !reflect.DeepEqual(idx, want) || blocks.VolumeSize != 1 || blocks.BlockSize != directBlock {
		t.Fatalf("list-snapshot-blocks: %v %d %d, want %v 1 %d", idx, blocks.VolumeSize, blocks.BlockSize, want, directBlock)
	}

	writeAt(t, img, 2*directBlock, directBlock, true) // zeroed
	writeAt(t, img, 500*directBlock, 3*directBlock, false)
	writeAt(t, img, 100*directBlock, 1, false)
	s2 := snapshotIDOf(t, runOK(t, "--socket", sock, "snapshot", "import", "--parent", s1, img))
	var diff struct{ ChangedRanges []byteRange }
	if err := json.Unmarshal([]byte(runOK(t, "--socket", sock, "snapshot", "diff", s1, s2)), &diff); err != nil {
		t.Fatal(err)
	}
	want := []byteRange{{2 * directBlock, directBlock}, {100 * directBlock, directBlock}, {500 * directBlock, 3 * directBlock}}
	if !reflect.DeepEqual(diff.ChangedRanges, want) {
		t.Fatalf("snapshot diff: %v, want %v", diff.ChangedRanges, want)
	}
	runOK(t, "--socket", sock, "snapshot", "export", "--base", s1, s2, out)
	sameFiles(t, img, out)

	var changed struct {
		ChangedBlocks []struct {
			BlockIndex                        int64
			FirstBlockToken, SecondBlockToken string
		}
	}
	if err := json.Unmarshal([]byte(runOK(t, "--socket", sock, "list-changed-blocks", "--first-snapshot-id", s1, "--second-snapshot-id", s2)), &changed); err != nil {
		t.Fatal(err)
	}
	if len(changed.ChangedBlocks) != 5 || changed.ChangedBlocks[0].SecondBlockToken != "" || changed.ChangedBlocks[1].SecondBlockToken == "" {
		t.Fatalf("list-changed-blocks: %+v", changed.ChangedBlocks)
	}
	blockFile := filepath.Join(dir, "block")
	c := changed.ChangedBlocks[1]
	runOK(t, "--socket", sock, "get-snapshot-block", "--snapshot-id", s2, "--block-index", "100", "--block-token", c.SecondBlockToken, blockFile)
	got, _ := os.ReadFile(blockFile)
	want100 := make([]byte, directBlock)
	if f, err := os.Open(img); err == nil {
		f.ReadAt(want100, 100*directBlock)
		f.Close()
	}
	if !bytes.Equal(got, want100) {
		t.Fatal("get-snapshot-block wrote other data")
	}
	_, errOut, code := run(t, "--socket", sock, "get-snapshot-block", "--snapshot-id", s2, "--block-index", "101", "--block-token", c.SecondBlockToken, blockFile)
	if code != exitAPIError || !strings.Contains(errOut, "An error occurred (ValidationException) when calling the GetSnapshotBlock operation") {
		t.Fatalf("a token of another block: exit %d, %q", code, errOut)
	}
}

func TestSnapshotTransferBadInput(t *testing.T) {
	sock := startDaemon(t)
	runCases(t, sock, []cliCase{
		{[]string{"snapshot", "diff", "snap-0123456789abcdef0"}, exitUsage, "give two snapshot IDs"},
		{[]string{"snapshot", "export", "snap-0123456789abcdef0"}, exitUsage, "give a snapshot ID and a file"},
		{[]string{"snapshot", "import"}, exitUsage, "give the image file"},
		{[]string{"snapshot", "import", "/nonexistent/disk.img"}, exitFailure, "no such file"},
		{[]string{"get-snapshot-block", "--snapshot-id", "snap-0123456789abcdef0", "out"}, exitUsage, "are required"},
		{[]string{"list-snapshot-blocks"}, exitUsage, "--snapshot-id is required"},
		{[]string{"list-changed-blocks", "--first-snapshot-id", "snap-0123456789abcdef0"}, exitUsage, "--second-snapshot-id is required"},
		{[]string{"list-snapshot-blocks", "--snapshot-id", "snap-0123456789abcdef0"}, exitAPIError,
			"An error occurred (ResourceNotFoundException) when calling the ListSnapshotBlocks operation"},
		{[]string{"snapshot", "diff", "snap-0123456789abcdef0", "snap-0123456789abcdef1"}, exitAPIError, "(ResourceNotFoundException)"},
		{[]string{"list-snapshot-blocks", "--snapshot-id", "snap-0123456789abcdef0", "--max-results", "5"}, exitAPIError, "(ValidationException)"},
	})
}
