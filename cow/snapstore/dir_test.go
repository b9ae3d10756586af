package snapstore_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestS3Conformance(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := context.Background()
	n := 0
	storetest.Run(t, func(t *testing.T) snapstore.Store {
		n++
		s, err := snapstore.Open(ctx, srv.URL(fmt.Sprintf("conformance-%d", n), "some/prefix"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestS3OpenErrors(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := context.Background()
	// A server that is not there: a clear error naming it, quickly.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err := snapstore.Open(ctx, "s3://b?endpoint=http://"+dead+"&max-attempts=2")
	if err == nil || !strings.Contains(err.Error(), "cannot reach or use bucket") || !strings.Contains(err.Error(), dead) {
		t.Errorf("open against no server: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("open against no server took %v", d)
	}
	for _, tt := range []struct{ url, want string }{
		{srv.URL("Bad_Bucket", ""), `bucket "Bad_Bucket"`},
		{"s3:///prefix?endpoint=" + srv.Endpoint(), "names a bucket"},
		{srv.URL("b", "x") + "&color=red", "unknown parameter"},
		{srv.URL("b", "x") + "&max-attempts=0", "max-attempts"},
	} {
		if _, err := snapstore.Open(ctx, tt.url); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%s) = %v, want an error containing %q", tt.url, err, tt.want)
		}
	}
	// Wrong credentials are refused at open.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, err := snapstore.Open(ctx, srv.URL("b", "")); err == nil || !strings.Contains(err.Error(), "cannot reach or use") {
		t.Errorf("open with wrong credentials: %v", err)
	}
}

func TestS3DetectsCorruptObject(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := context.Background()
	s, err := snapstore.Open(ctx, srv.URL("corrupt", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", []byte("good data")); err != nil {
		t.Fatal(err)
	}
	// Replace the object behind the store's back, keeping the metadata
	// (a server-side copy with the old checksum and new content is what
	// silent corruption looks like to a reader).
	raw, err := snapstore.OpenS3(ctx, "corrupt", "", snapstore.S3Options{Endpoint: srv.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.PutWithSHA256ForTest(ctx, "k", []byte("bad data!"), "0000"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, snapstore.ErrCorrupt) {
		t.Fatalf("Get of a corrupt object: %v, want ErrCorrupt", err)
	}
	// A body that does not match the checksum sent with it is refused
	// by the server, and nothing is stored.
	if err := raw.PutWithWrongChecksumForTest(ctx, "damaged", []byte("payload")); err == nil {
		t.Fatal("the server stored a body that fails its checksum")
	}
	if ok, err := s.Exists(ctx, "damaged"); ok || err != nil {
		t.Fatalf("after a refused put: exists %v, %v", ok, err)
	}
}
