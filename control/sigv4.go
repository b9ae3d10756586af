package control

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MaxClockSkew is how far a request's X-Amz-Date may lie from the daemon's
// clock, either way, as AWS allows: a request signed more than 15 minutes
// before (or after) it arrives is refused with RequestExpired.
//
// There is no replay cache, as there is none in EC2: SigV4 dates have a
// resolution of one second, so a waiter, a paginator or a retry that sends
// the same request twice within a second sends the same signature, and
// refusing it would break them. What keeps a captured request from being
// replayed later is this window, and TLS in front of the listener (SigV4
// authenticates but does not encrypt).
const MaxClockSkew = 15 * time.Minute

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	sigV4Service   = "ec2"
	amzDateFormat  = "20060102T150405Z"
	// unsignedPayload is the payload hash of a request whose body is
	// not signed.
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// sigV4Verifier authenticates requests by their Signature Version 4
// Authorization header. It recomputes the signature with the AWS SDK's own
// signer over the headers the client says it signed and the body as
// received, so a request verifies exactly when the SDK would have produced
// the same signature with the key's secret. It keeps no state between
// requests.
type sigV4Verifier struct {
	keys   map[string]AccessKey // by access key ID
	signer *v4.Signer
	now    func() time.Time
}

func newSigV4Verifier(keys []AccessKey) *sigV4Verifier {
	v := &sigV4Verifier{
		keys:   make(map[string]AccessKey, len(keys)),
		signer: v4.NewSigner(),
		now:    time.Now,
	}
	for _, k := range keys {
		v.keys[k.AccessKeyID] = k
	}
	return v
}

// authorization is a parsed SigV4 Authorization header.
type authorization struct {
	accessKeyID, date, region, service string
	signedHeaders                      []string
	signature                          string
}

func parseAuthorization(h string) (authorization, bool) {
	var a authorization
	rest, ok := strings.CutPrefix(h, sigV4Algorithm+" ")
	if !ok {
		return a, false
	}
	var cred, signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, false
		}
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			a.signature = v
		default:
			return a, false
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || signed == "" || len(a.signature) != 64 {
		return a, false
	}
	a.accessKeyID, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(signed, ";")
	return a, true
}

// verify authenticates r, whose body has been read into body. Every
// refusal carries, besides EC2's message for the client, the reason for
// the daemon's log (APIError.reason).
func (v *sigV4Verifier) verify(ctx context.Context, r *http.Request, body []byte) (Caller, *APIError) {
	q := r.URL.Query()
	if q.Has("X-Amz-Signature") || q.Has("X-Amz-Algorithm") {
		return Caller{}, authFailure("presigned URL (query-string authentication)",
			"Query-string (presigned) authentication is not accepted: sign the Authorization header.")
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		e := &APIError{Code: CodeMissingAuthenticationToken, StatusCode: http.StatusUnauthorized,
			Message: "Request is missing Authentication Token: sign requests to this endpoint with AWS Signature Version 4 (service ec2)."}
		return Caller{}, e.because("no Authorization header (unsigned request)")
	}
	a, ok := parseAuthorization(h)
	if !ok {
		return Caller{}, apiErr(CodeIncompleteSignature,
			"The Authorization header is not a valid AWS4-HMAC-SHA256 header (Credential=KEY/DATE/REGION/ec2/aws4_request, SignedHeaders=..., Signature=...).").
			because("malformed Authorization header")
	}
	service := sigV4Service
	if isKMSRequest(r) {
		service = kmsService
	} else if isEBSRequest(r) {
		service = ebsService
	} else if isRbinRequest(r) {
		service = rbinService
	} else if isDLMRequest(r) {
		service = dlmService
	}
	if a.service != service {
		return Caller{}, authFailure(fmt.Sprintf("wrong service: the credential scope names %q, the request is for %q", clip(a.service), service),
			"The credential scope names service %q; this request is for %q.", clip(a.service), service)
	}
	key, ok := v.keys[a.accessKeyID]
	if !ok {
		return Caller{}, authFailure(fmt.Sprintf("unknown access key %q (not in the credentials file)", clip(a.accessKeyID)),
			"AWS was not able to validate the provided access credentials.")
	}
	when, e := v.checkDate(r, a)
	if e != nil {
		return Caller{}, e
	}
	if e := v.checkSignature(ctx, r, body, a, key, when); e != nil {
		return Caller{}, e
	}
	return Caller{AccessKeyID: key.AccessKeyID, KeyAccess: key.Access}, nil
}

// checkDate checks that the request carries a signed X-Amz-Date and a
// signed Host, that the credential scope's date is X-Amz-Date's, and that
// X-Amz-Date is within MaxClockSkew of the daemon's clock.
func (v *sigV4Verifier) checkDate(r *http.Request, a authorization) (time.Time, *APIError) {
	const msg = "The request must carry a signed X-Amz-Date header (%s) and a signed Host header."
	when, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
	switch {
	case err != nil:
		return when, apiErr(CodeIncompleteSignature, msg, amzDateFormat).
			because(fmt.Sprintf("X-Amz-Date %q missing or not %s", clip(r.Header.Get("X-Amz-Date")), amzDateFormat))
	case !slices.Contains(a.signedHeaders, "x-amz-date"):
		return when, apiErr(CodeIncompleteSignature, msg, amzDateFormat).because("X-Amz-Date is not among the signed headers")
	case !slices.Contains(a.signedHeaders, "host"):
		return when, apiErr(CodeIncompleteSignature, msg, amzDateFormat).because("the Host header is not among the signed headers")
	case when.Format("20060102") != a.date:
		return when, authFailure(fmt.Sprintf("the credential scope's date %s is not X-Amz-Date's", clip(a.date)),
			"The credential scope's date %s is not the date of X-Amz-Date.", clip(a.date))
	}
	now := v.now()
	if skew := now.Sub(when); skew > MaxClockSkew || skew < -MaxClockSkew {
		dir := "behind"
		if skew < 0 {
			dir, skew = "ahead of", -skew
		}
		return when, apiErr(CodeRequestExpired,
			"Request has expired: its timestamp %s is more than %v from the server's time %s.",
			when.Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339)).
			because(fmt.Sprintf("expired: X-Amz-Date %s is %v %s the daemon's clock (at most %v)",
				when.Format(time.RFC3339), skew.Round(time.Second), dir, MaxClockSkew))
	}
	return when, nil
}

// checkSignature recomputes the signature of the request the client
// signed (the method, path and query, and only the headers it names) and
// compares it with the one it sent.
func (v *sigV4Verifier) checkSignature(ctx context.Context, r *http.Request, body []byte, a authorization, key AccessKey, when time.Time) *APIError {
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	re, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		return authFailure("the request URL cannot be rebuilt: "+err.Error(), "The request URL cannot be verified.")
	}
	re.Host = r.Host
	for _, name := range a.signedHeaders {
		switch name {
		case "host":
		case "content-length":
			re.ContentLength = int64(len(body))
		default:
			vals := r.Header.Values(name)
			if len(vals) == 0 {
				return authFailure(fmt.Sprintf("the signed header %s is missing from the request", clip(name)),
					"The signed header %s is missing from the request.", clip(name))
			}
			re.Header[http.CanonicalHeaderKey(name)] = vals
		}
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if a.service == ebsService && r.Header.Get("X-Amz-Content-Sha256") == unsignedPayload {
		// PutSnapshotBlock's body is not signed (the SDK sends it
		// unsigned; its x-amz-Checksum covers it).
		payload = unsignedPayload
	}
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	if err := v.signer.SignHTTP(ctx, creds, re, payload, a.service, a.region, when); err != nil {
		return authFailure("the signature cannot be recomputed: "+err.Error(), "The signature cannot be verified.")
	}
	want, ok := parseAuthorization(re.Header.Get("Authorization"))
	if !ok || strings.Join(want.signedHeaders, ";") != strings.Join(a.signedHeaders, ";") ||
		!hmac.Equal([]byte(want.signature), []byte(a.signature)) {
		return authFailure(fmt.Sprintf("bad signature by access key %s: not the one its secret gives (a wrong secret, or the request was changed after signing)", key.AccessKeyID),
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}

// authFailure is a 401 AuthFailure with EC2's message for the client and
// the reason for the daemon's log.
func authFailure(reason, format string, args ...any) *APIError {
	e := apiErr(CodeAuthFailure, format, args...)
	e.StatusCode = http.StatusUnauthorized
	return e.because(reason)
}
