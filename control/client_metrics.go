package control

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
)

// Metrics fetches the daemon's Prometheus metrics (GET /metrics, text
// format), as `cowvol status` reads them. A caller the daemon refuses gets
// its *APIError.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	const op = "metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://cowvol"+metricsPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, transportError(ctx, op, fmt.Errorf("read answer: %w", err))
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	var er errorResponse
	if err := xml.Unmarshal(body, &er); err != nil || len(er.Errors) == 0 {
		return nil, fmt.Errorf("GET /metrics: unexpected answer (HTTP %d): %.200q", resp.StatusCode, body)
	}
	return nil, &APIError{Code: er.Errors[0].Code, Message: er.Errors[0].Message, RequestID: er.RequestID, StatusCode: resp.StatusCode}
}
