package control

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Limits of SigV4 verification.
const (
	// MaxClockSkew is how far a request's X-Amz-Date may lie from the
	// daemon's clock, either way. EC2 allows 15 minutes; cowvol allows
	// less, which keeps the replay window (and its memory) small.
	MaxClockSkew = 5 * time.Minute
	// maxSeenSignatures bounds the replay cache: past it, requests are
	// refused with RequestLimitExceeded until old signatures expire.
	maxSeenSignatures = 100_000
)

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	sigV4Service   = "ec2"
	amzDateFormat  = "20060102T150405Z"
)

// sigV4Verifier authenticates requests by their Signature Version 4
// Authorization header. It recomputes the signature with the AWS SDK's own
// signer over the headers the client says it signed and the body as
// received, so a request verifies exactly when the SDK would have produced
// the same signature with the key's secret.
type sigV4Verifier struct {
	keys   map[string]AccessKey // by access key ID
	signer *v4.Signer
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // signature -> when it may be forgotten
	fifo []seenSignature      // the same, oldest first
}

type seenSignature struct {
	sig    string
	expiry time.Time
}

func newSigV4Verifier(keys []AccessKey) *sigV4Verifier {
	v := &sigV4Verifier{
		keys:   make(map[string]AccessKey, len(keys)),
		signer: v4.NewSigner(),
		now:    time.Now,
		seen:   make(map[string]time.Time),
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

// verify authenticates r, whose body has been read into body.
func (v *sigV4Verifier) verify(ctx context.Context, r *http.Request, body []byte) (Caller, *APIError) {
	q := r.URL.Query()
	if q.Has("X-Amz-Signature") || q.Has("X-Amz-Algorithm") {
		return Caller{}, errAuthFailure("Query-string (presigned) authentication is not accepted: sign the Authorization header.")
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Caller{}, &APIError{Code: CodeMissingAuthenticationToken, StatusCode: http.StatusUnauthorized,
			Message: "Request is missing Authentication Token: sign requests to this endpoint with AWS Signature Version 4 (service ec2)."}
	}
	a, ok := parseAuthorization(h)
	if !ok {
		return Caller{}, apiErr(CodeIncompleteSignature,
			"The Authorization header is not a valid AWS4-HMAC-SHA256 header (Credential=KEY/DATE/REGION/ec2/aws4_request, SignedHeaders=..., Signature=...).")
	}
	service := sigV4Service
	if isKMSRequest(r) {
		service = kmsService
	}
	if a.service != service {
		return Caller{}, errAuthFailure("The credential scope names service %q; this request is for %q.", clip(a.service), service)
	}
	key, ok := v.keys[a.accessKeyID]
	if !ok {
		return Caller{}, errAuthFailure("AWS was not able to validate the provided access credentials.")
	}
	when, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
	if err != nil || !slices.Contains(a.signedHeaders, "x-amz-date") || !slices.Contains(a.signedHeaders, "host") {
		return Caller{}, apiErr(CodeIncompleteSignature, "The request must carry a signed X-Amz-Date header (%s) and a signed Host header.", amzDateFormat)
	}
	if when.Format("20060102") != a.date {
		return Caller{}, errAuthFailure("The credential scope's date %s is not the date of X-Amz-Date.", clip(a.date))
	}
	now := v.now()
	if skew := now.Sub(when); skew > MaxClockSkew || skew < -MaxClockSkew {
		return Caller{}, apiErr(CodeRequestExpired,
			"Request timestamp %s is more than %v from the server's time %s.", when.Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	}

	// Rebuild the request the client signed: the method, path and query,
	// and only the headers it names.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	re, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		return Caller{}, errAuthFailure("The request URL cannot be verified.")
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
				return Caller{}, errAuthFailure("The signed header %s is missing from the request.", clip(name))
			}
			re.Header[http.CanonicalHeaderKey(name)] = vals
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	if err := v.signer.SignHTTP(ctx, creds, re, hex.EncodeToString(sum[:]), a.service, a.region, when); err != nil {
		return Caller{}, errAuthFailure("The signature cannot be verified.")
	}
	want, ok := parseAuthorization(re.Header.Get("Authorization"))
	if !ok || strings.Join(want.signedHeaders, ";") != strings.Join(a.signedHeaders, ";") ||
		!hmac.Equal([]byte(want.signature), []byte(a.signature)) {
		return Caller{}, errAuthFailure("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	if e := v.remember(a.signature, when, now); e != nil {
		return Caller{}, e
	}
	return Caller{AccessKeyID: key.AccessKeyID, KeyAccess: key.Access}, nil
}

// remember records a verified signature until it could no longer pass the
// clock-skew check, and refuses one seen before: a captured request cannot
// be replayed.
func (v *sigV4Verifier) remember(sig string, when, now time.Time) *APIError {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.fifo) > 0 && !v.fifo[0].expiry.After(now) {
		delete(v.seen, v.fifo[0].sig)
		v.fifo = v.fifo[1:]
	}
	if _, dup := v.seen[sig]; dup {
		return errAuthFailure("This request signature has already been used: sign each request afresh.")
	}
	if len(v.seen) >= maxSeenSignatures {
		return &APIError{Code: CodeRequestLimitExceeded, StatusCode: http.StatusServiceUnavailable,
			Message: "Request limit exceeded."}
	}
	expiry := when.Add(MaxClockSkew) // after which the skew check refuses it
	v.seen[sig] = expiry
	v.fifo = append(v.fifo, seenSignature{sig, expiry})
	return nil
}

func errAuthFailure(format string, args ...any) *APIError {
	e := apiErr(CodeAuthFailure, format, args...)
	e.StatusCode = http.StatusUnauthorized
	return e
}
