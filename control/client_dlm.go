package control

import (
	"context"
	"net/http"
	"net/url"
)

// DLM sends a Data Lifecycle Manager request (dlm.go): method, a path
// under /policies, its query and JSON body. It returns the answer's JSON;
// errors come back as *APIError with DLM's exception as Code.
func (c *Client) DLM(ctx context.Context, op, method, path string, q url.Values, body []byte) ([]byte, error) {
	h := http.Header{"Content-Type": {"application/json"}}
	b, _, err := c.ebsCall(ctx, op, method, path, q, h, body, http.StatusOK)
	return b, err
}
