package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// freeLoopbackAddr returns a loopback TCP address that was free a moment
// ago, for a daemon's --listen.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// accessKey is one entry of a daemon's --credentials-file.
type accessKey struct {
	profile, id, secret string
	access              string // "" (full) or read-only
}

// writeCredentialsFile writes keys in the AWS credentials file format, mode
// 0600, and returns its path.
func writeCredentialsFile(t testing.TB, keys ...accessKey) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", k.profile, k.id, k.secret)
		if k.access != "" {
			fmt.Fprintf(&b, "cowvol_access = %s\n", k.access)
		}
	}
	path := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
