package kms

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	region  = "us-east-1"
	account = "123456789012"
)

func openTest(t *testing.T, dir string) *Local {
	t.Helper()
	k, err := OpenLocal(dir, region, account)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWrapUnwrapAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	k := openTest(t, dir)
	arn, err := k.ResolveKey("")
	if err != nil {
		t.Fatal(err)
	}
	if !arnPattern.MatchString(arn) || !strings.HasPrefix(arn, "arn:aws:kms:us-east-1:123456789012:key/") {
		t.Fatalf("default key ARN %q", arn)
	}
	if again, _ := k.ResolveKey(DefaultAlias); again != arn {
		t.Fatalf("the default alias resolves to %s, then %s", arn, again)
	}
	plain, wrapped, err := k.GenerateDataKey(arn)
	if err != nil || len(plain) != DataKeySize {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	if bytes.Contains(wrapped, plain) {
		t.Fatal("the wrapped key contains the data key")
	}

	k2 := openTest(t, dir) // a restarted daemon
	got, by, err := k2.Unwrap(wrapped)
	if err != nil || !bytes.Equal(got, plain) || by != arn {
		t.Fatalf("Unwrap after reopening: %v, by %s", err, by)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("keyring mode %v, want 0700", fi.Mode().Perm())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, plain) {
			t.Errorf("%s holds the data key in the clear", f)
		}
	}
	if len(files) != 1 {
		t.Errorf("keyring files %v, want the default key's only", files)
	}
}

func TestKeyLookupAndErrors(t *testing.T) {
	k := openTest(t, filepath.Join(t.TempDir(), "keyring"))
	info, err := k.CreateKey("db volumes", "alias/db")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{info.KeyID, info.ARN, "alias/db"} {
		if got, err := k.DescribeKey(id); err != nil || got.ARN != info.ARN {
			t.Errorf("DescribeKey(%s) = %+v, %v", id, got, err)
		}
	}
	for _, tc := range []struct {
		id   string
		want error
	}{
		{"alias/nope", ErrKeyNotFound},
		{"00000000-0000-0000-0000-000000000000", ErrKeyNotFound},
		{"arn:aws:kms:eu-west-1:123456789012:key/" + info.KeyID, ErrKeyNotFound}, // another region
		{"arn:aws:kms:us-east-1:999999999999:key/" + info.KeyID, ErrKeyNotFound}, // another account
		{"arn:aws:kms:us-east-1:123456789012:alias/db", ErrInvalidKeyID},
		{"../../etc/passwd", ErrInvalidKeyID},
		{"", ErrInvalidKeyID},
	} {
		if _, err := k.DescribeKey(tc.id); !errors.Is(err, tc.want) {
			t.Errorf("DescribeKey(%q) = %v, want %v", tc.id, err, tc.want)
		}
	}
	if _, err := k.CreateKey("", "alias/db"); !errors.Is(err, ErrAliasExists) {
		t.Errorf("a second alias/db: %v", err)
	}
	if _, err := k.CreateKey("", "db"); !errors.Is(err, ErrInvalidKeyID) {
		t.Errorf("alias without alias/: %v", err)
	}
	if err := k.CreateAlias("alias/db-too", info.ARN); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.DescribeKey("alias/db-too"); got.KeyID != info.KeyID || len(got.Aliases) != 2 {
		t.Errorf("after CreateAlias: %+v", got)
	}
	for _, bad := range []string{"alias/db", "alias/aws/mine", "db2"} {
		if err := k.CreateAlias(bad, info.KeyID); err == nil {
			t.Errorf("CreateAlias(%q) succeeded", bad)
		}
	}
	if err := k.CreateAlias("alias/orphan", "alias/none"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("CreateAlias to a missing key: %v", err)
	}
	if n := len(k.ListKeys()); n != 1 {
		t.Errorf("%d keys, want 1 (failed creates leave nothing)", n)
	}
}

func TestDisabledKeyUnwrapsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	k := openTest(t, dir)
	info, _ := k.CreateKey("", "alias/app")
	plain, wrapped, err := k.GenerateDataKey("alias/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.SetEnabled("alias/app", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Unwrap(wrapped); !errors.Is(err, ErrKeyDisabled) || !strings.Contains(err.Error(), info.ARN) {
		t.Errorf("Unwrap under a disabled key: %v, want ErrKeyDisabled naming %s", err, info.ARN)
	}
	if _, _, err := k.GenerateDataKey(info.ARN); !errors.Is(err, ErrKeyDisabled) {
		t.Errorf("GenerateDataKey under a disabled key: %v", err)
	}
	if _, err := k.ResolveKey("alias/app"); !errors.Is(err, ErrKeyDisabled) {
		t.Errorf("ResolveKey of a disabled key: %v", err)
	}
	// The state is durable, and enabling brings the key back.
	k = openTest(t, dir)
	if _, _, err := k.Unwrap(wrapped); !errors.Is(err, ErrKeyDisabled) {
		t.Errorf("after reopening, Unwrap: %v, want still disabled", err)
	}
	if _, err := k.SetEnabled(info.KeyID, true); err != nil {
		t.Fatal(err)
	}
	if got, _, err := k.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("after enabling: %v", err)
	}
}

func TestTamperedOrForeignWrappedKeys(t *testing.T) {
	k := openTest(t, filepath.Join(t.TempDir(), "a"))
	arn, _ := k.ResolveKey("")
	_, wrapped, _ := k.GenerateDataKey(arn)
	for i := range wrapped {
		bad := append([]byte(nil), wrapped...)
		bad[i] ^= 0x01
		if got, _, err := k.Unwrap(bad); err == nil {
			t.Fatalf("a wrapped key with byte %d flipped unwrapped to %x", i, got)
		}
	}
	for _, bad := range [][]byte{nil, {1}, wrapped[:wrapHeader], wrapped[:len(wrapped)-1]} {
		if _, _, err := k.Unwrap(bad); err == nil {
			t.Errorf("Unwrap(%x) succeeded", bad)
		}
	}
	// Another keyring (another host's, or a lost one) cannot unwrap it.
	other := openTest(t, filepath.Join(t.TempDir(), "b"))
	if _, _, err := other.Unwrap(wrapped); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("another keyring: %v, want ErrKeyNotFound", err)
	}
}

func TestOpenLocalRefusesExposedKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	k := openTest(t, dir)
	info, _ := k.CreateKey("", "")
	keyPath := filepath.Join(dir, info.KeyID+".json")
	os.Chmod(keyPath, 0o644)
	if _, err := OpenLocal(dir, region, account); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a readable key file: %v", err)
	}
	os.Chmod(keyPath, 0o600)
	os.Chmod(dir, 0o755)
	if _, err := OpenLocal(dir, region, account); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("a readable keyring: %v", err)
	}
	os.Chmod(dir, 0o700)
	os.WriteFile(keyPath, []byte("{not json"), 0o600)
	if _, err := OpenLocal(dir, region, account); err == nil {
		t.Error("a corrupt key file was accepted")
	}
}
