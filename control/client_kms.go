package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Key is a KMS key as the CLI prints it (KMS's KeyMetadata, plus the
// key's aliases).
type Key struct {
	KeyID        string    `json:"KeyId"`
	Arn          string    `json:"Arn"`
	Aliases      []string  `json:"Aliases,omitempty"`
	Description  string    `json:"Description"`
	KeyState     string    `json:"KeyState"`
	Enabled      bool      `json:"Enabled"`
	KeyManager   string    `json:"KeyManager"`
	CreationDate time.Time `json:"CreationDate"`
}

// kmsCall POSTs a KMS operation and decodes a successful answer into out.
// KMS errors come back as *APIError with the KMS error type as Code.
func (c *Client) kmsCall(ctx context.Context, op string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://cowvol/", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", kmsContentType)
	req.Header.Set("X-Amz-Target", kmsTargetPrefix+op)
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return transportError(ctx, op, fmt.Errorf("read answer: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		var ke kmsError
		if err := json.Unmarshal(body, &ke); err != nil || ke.Type == "" {
			return fmt.Errorf("%s: unexpected answer (HTTP %d): %.200q", op, resp.StatusCode, body)
		}
		return &APIError{Code: ke.Type, Message: ke.Message, RequestID: resp.Header.Get("X-Amzn-RequestId"), StatusCode: resp.StatusCode}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}

func (m keyMetadata) key(aliases []string) Key {
	sec := int64(m.CreationDate)
	return Key{
		KeyID: m.KeyID, Arn: m.Arn, Aliases: aliases, Description: m.Description, KeyState: m.KeyState,
		Enabled: m.Enabled, KeyManager: m.KeyManager,
		CreationDate: time.Unix(sec, int64((m.CreationDate-float64(sec))*1e9)).UTC().Truncate(time.Millisecond),
	}
}

// CreateKey creates a KMS key and, if alias is set, points it at the key.
// A taken alias is found before the key is made, so a refusal leaves no
// key behind (short of a race with another client taking it).
func (c *Client) CreateKey(ctx context.Context, description, alias string) (Key, error) {
	if alias != "" {
		var ae *APIError
		err := c.kmsCall(ctx, "DescribeKey", map[string]string{"KeyId": alias}, nil)
		switch {
		case err == nil:
			return Key{}, &APIError{Code: kmsAlreadyExists, Message: "Alias " + alias + " already exists.", StatusCode: http.StatusBadRequest}
		case !errors.As(err, &ae) || ae.Code != kmsNotFound:
			return Key{}, err
		}
	}
	var out struct{ KeyMetadata keyMetadata }
	if err := c.kmsCall(ctx, "CreateKey", map[string]any{"Description": description}, &out); err != nil {
		return Key{}, err
	}
	if alias == "" {
		return out.KeyMetadata.key(nil), nil
	}
	if err := c.kmsCall(ctx, "CreateAlias", map[string]string{"AliasName": alias, "TargetKeyId": out.KeyMetadata.KeyID}, nil); err != nil {
		return Key{}, fmt.Errorf("key %s created, but not its alias: %w", out.KeyMetadata.Arn, err)
	}
	return out.KeyMetadata.key([]string{alias}), nil
}

// DescribeKeys describes the keys ids name (by ID, ARN or alias), or every
// key if ids is empty.
func (c *Client) DescribeKeys(ctx context.Context, ids []string) ([]Key, error) {
	if len(ids) == 0 {
		marker := ""
		for {
			in := map[string]any{"Limit": 1000}
			if marker != "" {
				in["Marker"] = marker
			}
			var out struct {
				Keys []struct {
					KeyID string `json:"KeyId"`
				}
				NextMarker string
				Truncated  bool
			}
			if err := c.kmsCall(ctx, "ListKeys", in, &out); err != nil {
				return nil, err
			}
			for _, k := range out.Keys {
				ids = append(ids, k.KeyID)
			}
			if !out.Truncated {
				break
			}
			marker = out.NextMarker
		}
	}
	keys := make([]Key, 0, len(ids))
	for _, id := range ids {
		var out struct{ KeyMetadata keyMetadata }
		if err := c.kmsCall(ctx, "DescribeKey", map[string]string{"KeyId": id}, &out); err != nil {
			return nil, err
		}
		var aliases struct {
			Aliases []struct{ AliasName string }
		}
		if err := c.kmsCall(ctx, "ListAliases", map[string]string{"KeyId": out.KeyMetadata.KeyID}, &aliases); err != nil {
			return nil, err
		}
		var names []string
		for _, a := range aliases.Aliases {
			names = append(names, a.AliasName)
		}
		keys = append(keys, out.KeyMetadata.key(names))
	}
	return keys, nil
}

// SetKeyEnabled enables or disables the key id names.
func (c *Client) SetKeyEnabled(ctx context.Context, id string, enabled bool) error {
	op := "DisableKey"
	if enabled {
		op = "EnableKey"
	}
	return c.kmsCall(ctx, op, map[string]string{"KeyId": id}, nil)
}
