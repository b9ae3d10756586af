package snapstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/storetest"
)

func TestDirConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) snapstore.Store {
		s, err := snapstore.OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestDirLeavesNoTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	s, _ := snapstore.OpenDir(root)
	s.Put(context.Background(), "a/b", []byte("x"))
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		url     string
		wantErr string
	}{
		{"file://" + dir, ""},
		{dir, "want a URL"},
		{"ftp://host/x", "unsupported scheme"},
		{"file://otherhost/x", "local path"},
	}
	for _, tt := range tests {
		_, err := snapstore.Open(context.Background(), tt.url)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Open(%q) = %v, want error containing %q", tt.url, err, tt.wantErr)
		}
	}
}
