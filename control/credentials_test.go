package control

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	good := `# cowvol keys
[admin]
aws_access_key_id = AKIAEXAMPLE00001
aws_secret_access_key = ` + secret + `
region = us-east-1

[auditor]
aws_access_key_id=AKIAEXAMPLE00002
aws_secret_access_key=` + secret + `  ; same secret, different key
cowvol_access = read-only
`
	keys, err := parseCredentials([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 ||
		keys[0] != (AccessKey{Profile: "admin", AccessKeyID: "AKIAEXAMPLE00001", SecretAccessKey: secret, Access: AccessFull}) ||
		keys[1] != (AccessKey{Profile: "auditor", AccessKeyID: "AKIAEXAMPLE00002", SecretAccessKey: secret, Access: AccessReadOnly}) {
		t.Errorf("parsed %+v", keys)
	}

	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "no access keys"},
		{"key before a section", "aws_access_key_id = AKIAEXAMPLE00001\n", "before the first [section]"},
		{"no secret", "[a]\naws_access_key_id = AKIAEXAMPLE00001\n", "no aws_secret_access_key"},
		{"no key id", "[a]\naws_secret_access_key = " + secret + "\n", "no aws_access_key_id"},
		{"short secret", "[a]\naws_access_key_id = AKIAEXAMPLE00001\naws_secret_access_key = short\n", "shorter than 16"},
		{"bad key id", "[a]\naws_access_key_id = AKIA/../x\n", "16 to 128 letters"},
		{"unknown key", "[a]\nfavourite_colour = blue\n", `unknown key "favourite_colour"`},
		{"bad access", "[a]\ncowvol_access = admin\n", "want full or read-only"},
		{"repeated section", "[a]\naws_access_key_id = AKIAEXAMPLE00001\naws_secret_access_key = " + secret + "\n[a]\n", "repeated"},
		{"unterminated section", "[a\n", "must end with ]"},
		{"no equals", "[a]\njust words\n", "want key = value"},
		{"duplicate key id", "[a]\naws_access_key_id = AKIAEXAMPLE00001\naws_secret_access_key = " + secret +
			"\n[b]\naws_access_key_id = AKIAEXAMPLE00001\naws_secret_access_key = " + secret + "\n", "same aws_access_key_id"},
	} {
		_, err := parseCredentials([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadCredentialsRefusesReadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	body := "[a]\naws_access_key_id = AKIAEXAMPLE00001\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable credentials file: %v, want a refusal", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, err := LoadCredentials(path); err != nil || len(keys) != 1 {
		t.Errorf("mode 0600: %v %v", keys, err)
	}
	if _, err := LoadCredentials(path + ".missing"); err == nil {
		t.Error("a missing file loaded")
	}
}
