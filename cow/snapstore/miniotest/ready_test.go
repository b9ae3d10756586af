package miniotest

import (
	"net/http"
	"testing"
)

// TestStartReturnsWhenS3Answers: once Start returns, an S3 request gets
// MinIO's answer, not 503 "Server not initialized". An anonymous request
// for a bucket is answered 403 AccessDenied by a ready server. MinIO's
// liveness check answers 200 some milliseconds before that (more under
// load), which is what Start used to wait for.
func TestStartReturnsWhenS3Answers(t *testing.T) {
	srv := Start(t)
	resp, err := http.Get(srv.Endpoint() + "/some-bucket")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an anonymous GET of a bucket right after Start: HTTP %d, want 403 (ready)", resp.StatusCode)
	}
}
