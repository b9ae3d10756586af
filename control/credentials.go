package control

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// AccessKey is one entry of a credentials file: a key pair that may sign
// requests to the TCP listener, and what its holder may do.
type AccessKey struct {
	Profile         string // the [section] it came from, for logs
	AccessKeyID     string
	SecretAccessKey string
	Access          Access
}

// LoadCredentials reads a credentials file in the AWS shared credentials
// format, the one `aws configure` writes, so the same file can serve the
// daemon and its clients:
//
//	[alice]
//	aws_access_key_id = AKIAEXAMPLE0001
//	aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
//	cowvol_access = read-only   ; optional: full (the default) or read-only
//
// Every section must give both keys; access key IDs must be unique. The
// file holds secrets, so it must not be readable or writable by others
// (like ssh's private keys): a file with any "other" permission bit set
// is refused.
func LoadCredentials(path string) ([]AccessKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("credentials file %s has mode %v: it holds secrets, make it unreadable by others (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	keys, err := parseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return keys, nil
}

func parseCredentials(b []byte) ([]AccessKey, error) {
	var keys []AccessKey
	var cur *AccessKey
	seenProfiles := make(map[string]bool)
	seenIDs := make(map[string]string)
	finish := func() error {
		if cur == nil {
			return nil
		}
		switch {
		case cur.AccessKeyID == "":
			return fmt.Errorf("[%s] has no aws_access_key_id", cur.Profile)
		case cur.SecretAccessKey == "":
			return fmt.Errorf("[%s] has no aws_secret_access_key", cur.Profile)
		}
		if other, dup := seenIDs[cur.AccessKeyID]; dup {
			return fmt.Errorf("[%s] and [%s] have the same aws_access_key_id", other, cur.Profile)
		}
		seenIDs[cur.AccessKeyID] = cur.Profile
		keys = append(keys, *cur)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: a section header must end with ]", n)
			}
			if err := finish(); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if name == "" || seenProfiles[name] {
				return nil, fmt.Errorf("line %d: section [%s] is empty or repeated", n, name)
			}
			seenProfiles[name] = true
			cur = &AccessKey{Profile: name, Access: AccessFull}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want key = value", n)
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: a key before the first [section]", n)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(stripComment(v))
		switch k {
		case "aws_access_key_id":
			if !validAccessKeyID(v) {
				return nil, fmt.Errorf("line %d: aws_access_key_id must be 16 to 128 letters and digits", n)
			}
			cur.AccessKeyID = v
		case "aws_secret_access_key":
			if len(v) < 16 {
				return nil, fmt.Errorf("line %d: aws_secret_access_key is shorter than 16 characters", n)
			}
			cur.SecretAccessKey = v
		case "cowvol_access":
			a, err := ParseAccess(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: cowvol_access: %w", n, err)
			}
			cur.Access = a
		case "aws_session_token", "region", "output":
			// Client-side settings an `aws configure` file may carry.
		default:
			return nil, fmt.Errorf("line %d: unknown key %q", n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no access keys")
	}
	return keys, nil
}

// stripComment drops a " ;" or " #" comment after a value.
func stripComment(v string) string {
	for _, sep := range []string{" ;", " #", "\t;", "\t#"} {
		if i := strings.Index(v, sep); i >= 0 {
			v = v[:i]
		}
	}
	return v
}

func validAccessKeyID(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
