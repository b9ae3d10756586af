package control

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

// kmsTestEnv is a real keyring behind a real server on a unix socket, and
// the AWS SDK's KMS client pointed at it.
func kmsTestEnv(t *testing.T) (*awskms.Client, *kms.Local, *testEnv) {
	t.Helper()
	keys, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), "us-east-1", "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, cow.Options{}, Options{Keys: keys, AccountID: "123456789012"})
	c := awskms.New(awskms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       env.raw, // on env's socket
		RetryMaxAttempts: 1,
	})
	return c, keys, env
}

func kmsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestKMSWithTheSDK(t *testing.T) {
	c, keys, _ := kmsTestEnv(t)
	ctx := context.Background()

	created, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("db volumes")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	md := created.KeyMetadata
	if !strings.HasPrefix(aws.ToString(md.Arn), "arn:aws:kms:us-east-1:123456789012:key/") || !md.Enabled ||
		md.KeyState != kmstypes.KeyStateEnabled || aws.ToString(md.Description) != "db volumes" ||
		aws.ToString(md.AWSAccountId) != "123456789012" || md.CreationDate == nil || md.KeyManager != kmstypes.KeyManagerTypeCustomer {
		t.Errorf("KeyMetadata %+v", md)
	}
	id := aws.ToString(md.KeyId)
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/db"), TargetKeyId: md.KeyId}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	for _, ref := range []string{id, aws.ToString(md.Arn), "alias/db"} {
		out, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil || aws.ToString(out.KeyMetadata.KeyId) != id {
			t.Errorf("DescribeKey(%s): %v", ref, err)
		}
	}
	aliases, err := c.ListAliases(ctx, &awskms.ListAliasesInput{KeyId: aws.String(id)})
	if err != nil || len(aliases.Aliases) != 1 || aws.ToString(aliases.Aliases[0].AliasName) != "alias/db" ||
		aws.ToString(aliases.Aliases[0].AliasArn) != "arn:aws:kms:us-east-1:123456789012:alias/db" {
		t.Errorf("ListAliases: %+v %v", aliases, err)
	}

	if _, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String("alias/db")}); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	if out, _ := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)}); out.KeyMetadata.Enabled || out.KeyMetadata.KeyState != kmstypes.KeyStateDisabled {
		t.Errorf("after DisableKey: %+v", out.KeyMetadata)
	}
	if _, _, err := keys.GenerateDataKey(id); !errors.Is(err, kms.ErrKeyDisabled) {
		t.Errorf("the keyring after DisableKey: %v, want ErrKeyDisabled", err)
	}
	if _, err := c.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(id)}); err != nil {
		t.Fatalf("EnableKey: %v", err)
	}

	// Pages of one through every key.
	for i := 0; i < 2; i++ {
		c.CreateKey(ctx, &awskms.CreateKeyInput{})
	}
	seen := map[string]bool{}
	p := awskms.NewListKeysPaginator(c, &awskms.ListKeysInput{Limit: aws.Int32(1)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		for _, k := range out.Keys {
			seen[aws.ToString(k.KeyId)] = true
		}
		if len(seen) > 3 {
			t.Fatal("the paginator does not end")
		}
	}
	if len(seen) != 3 || !seen[id] {
		t.Errorf("ListKeys saw %v, want 3 keys including %s", seen, id)
	}

	for _, tc := range []struct {
		name string
		err  error
		code string
	}{
		{"DescribeKey of a missing alias", func() error {
			_, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/none")})
			return err
		}(), "NotFoundException"},
		{"DescribeKey of garbage", func() error {
			_, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("../../x")})
			return err
		}(), "ValidationException"},
		{"a second alias/db", func() error {
			_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/db"), TargetKeyId: aws.String(id)})
			return err
		}(), "AlreadyExistsException"},
		{"an asymmetric key", func() error {
			_, err := c.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: kmstypes.KeySpecRsa2048})
			return err
		}(), "ValidationException"},
		{"an operation the daemon does not serve", func() error {
			_, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(id)})
			return err
		}(), "UnknownOperationException"},
	} {
		if got := kmsCode(tc.err); got != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, tc.err, tc.code)
		}
	}
}

// TestKMSAuthorization: key management follows the daemon's policy:
// strangers get nothing, read-only callers may describe and list.
func TestKMSAuthorization(t *testing.T) {
	keys, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), "us-east-1", "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(panicBackend{}, Options{Logger: quietLogger(), Keys: keys, Policy: Policy{ReadOnlyGIDs: []uint32{3000}}})
	call := func(c Caller, op, body string) (int, string) {
		h := srv.handler(func(*http.Request, []byte) (Caller, *APIError) { return c, nil })
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("X-Amz-Target", "TrentService."+op)
		r.Header.Set("Content-Type", kmsContentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	stranger := Caller{Unix: true, UID: 4242, GID: 4242}
	reader := Caller{Unix: true, UID: 4243, GID: 3000}
	for _, op := range []string{"CreateKey", "ListKeys", "DisableKey"} {
		if st, body := call(stranger, op, "{}"); st != 403 || !strings.Contains(body, kmsAccessDenied) {
			t.Errorf("%s as a stranger: %d %s", op, st, body)
		}
	}
	if st, body := call(reader, "CreateKey", "{}"); st != 403 {
		t.Errorf("CreateKey as a reader: %d %s", st, body)
	}
	if st, body := call(reader, "ListKeys", "{}"); st != 200 || !strings.Contains(body, `"Keys":`) {
		t.Errorf("ListKeys as a reader: %d %s", st, body)
	}
	if len(keys.ListKeys()) != 0 {
		t.Errorf("refused requests made keys: %v", keys.ListKeys())
	}
	for _, body := range []string{"{", `{"Description": 5}`, `{"Unknown": true}`, "[]"} {
		if st, out := call(Caller{Unix: true}, "CreateKey", body); st != 400 || !strings.Contains(out, kmsSerialization) {
			t.Errorf("CreateKey %s: %d %s", body, st, out)
		}
	}
	if st, out := call(Caller{Unix: true}, "ListKeys", `{"Marker":"99"}`); st != 400 || !strings.Contains(out, kmsValidation) {
		t.Errorf("a marker past the end: %d %s", st, out)
	}
	// Without a keyring the daemon says so.
	bare := NewServer(panicBackend{}, Options{Logger: quietLogger()})
	h := bare.handler(rootCaller)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "no keyring") {
		t.Errorf("no keyring: %d %s", w.Code, w.Body)
	}
}
