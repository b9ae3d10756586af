package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// The Data Lifecycle Manager verbs, as `aws dlm` spells them:
// cowvol dlm create-lifecycle-policy, get-lifecycle-policies,
// get-lifecycle-policy, update-lifecycle-policy, delete-lifecycle-policy,
// and tag-resource, untag-resource, list-tags-for-resource (dlm_tags.go).
// JSON arguments (--policy-details) are given inline or as file://PATH;
// answers are printed as the aws CLI prints them.

func dlmCommand() *cli.Command {
	return &cli.Command{
		Name:  "dlm",
		Usage: "lifecycle policies that snapshot tagged volumes on a schedule (as aws dlm)",
		Subcommands: []*cli.Command{
			dlmCreateCommand(), dlmGetPoliciesCommand(), dlmGetPolicyCommand(), dlmUpdateCommand(), dlmDeleteCommand(),
			dlmTagCommand(), dlmUntagCommand(), dlmListTagsCommand(),
		},
	}
}

func policyIDFlag() cli.Flag {
	return &cli.StringFlag{Name: "policy-id", Usage: "the policy (policy-...)"}
}

// policyBodyFlags are the fields create and update set.
func policyBodyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "description", Usage: "what the policy is for (0-9A-Za-z, space, _ and -)"},
		&cli.StringFlag{Name: "state", Usage: "ENABLED or DISABLED"},
		&cli.StringFlag{Name: "execution-role-arn", Usage: "the IAM role DLM would use (accepted and kept; cowvol acts as the daemon)"},
		&cli.StringFlag{Name: "policy-details", Usage: "PolicyDetails as `JSON` or file://PATH"},
	}
}

func dlmCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create-lifecycle-policy",
		Usage:     "create a lifecycle policy; prints its PolicyId",
		UsageText: "cowvol dlm create-lifecycle-policy --execution-role-arn ARN --description TEXT --state ENABLED|DISABLED --policy-details JSON|file://PATH [--tags KEY=VALUE,...]",
		Flags: append(policyBodyFlags(),
			&cli.StringSliceFlag{Name: "tags", Usage: "the policy's own tags, KEY=VALUE"}),
		Action: func(c *cli.Context) error {
			body, err := policyBody(c)
			if err != nil {
				return err
			}
			tags, err := tagMapArg(c, c.StringSlice("tags"))
			if err != nil {
				return err
			}
			if len(tags) > 0 {
				body["Tags"] = tags
			}
			return dlmCall(c, "CreateLifecyclePolicy", http.MethodPost, "/policies", nil, body, true)
		},
	}
}

func dlmGetPoliciesCommand() *cli.Command {
	return &cli.Command{
		Name:      "get-lifecycle-policies",
		Usage:     "list lifecycle policies (summaries), optionally filtered",
		UsageText: "cowvol dlm get-lifecycle-policies [--policy-ids ID ...] [--state S] [--resource-types VOLUME] [--target-tags K=V ...] [--tags-to-add K=V ...]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "policy-ids", Usage: "only these policies"},
			&cli.StringFlag{Name: "state", Usage: "only policies in this state (ENABLED, DISABLED, ERROR)"},
			&cli.StringSliceFlag{Name: "resource-types", Usage: "only policies for these resource types"},
			&cli.StringSliceFlag{Name: "target-tags", Usage: "only policies targeting one of these KEY=VALUE tags"},
			&cli.StringSliceFlag{Name: "tags-to-add", Usage: "only policies adding one of these KEY=VALUE tags"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			q := url.Values{}
			for flag, param := range map[string]string{"policy-ids": "policyIds", "resource-types": "resourceTypes",
				"target-tags": "targetTags", "tags-to-add": "tagsToAdd"} {
				for _, v := range c.StringSlice(flag) {
					q.Add(param, v)
				}
			}
			if s := c.String("state"); s != "" {
				q.Set("state", s)
			}
			return dlmCall(c, "GetLifecyclePolicies", http.MethodGet, "/policies", q, nil, true)
		},
	}
}

func dlmGetPolicyCommand() *cli.Command {
	return &cli.Command{
		Name:      "get-lifecycle-policy",
		Usage:     "describe one lifecycle policy in full",
		UsageText: "cowvol dlm get-lifecycle-policy --policy-id ID",
		Flags:     []cli.Flag{policyIDFlag()},
		Action: func(c *cli.Context) error {
			id, err := requirePolicyID(c)
			if err != nil {
				return err
			}
			return dlmCall(c, "GetLifecyclePolicy", http.MethodGet, "/policies/"+url.PathEscape(id), nil, nil, true)
		},
	}
}

func dlmUpdateCommand() *cli.Command {
	return &cli.Command{
		Name:      "update-lifecycle-policy",
		Usage:     "change a lifecycle policy (the fields given replace the policy's); prints nothing",
		UsageText: "cowvol dlm update-lifecycle-policy --policy-id ID [--state S] [--description TEXT] [--execution-role-arn ARN] [--policy-details JSON|file://PATH]",
		Flags:     append(policyBodyFlags(), policyIDFlag()),
		Action: func(c *cli.Context) error {
			id, err := requirePolicyID(c)
			if err != nil {
				return err
			}
			body, err := policyBody(c)
			if err != nil {
				return err
			}
			return dlmCall(c, "UpdateLifecyclePolicy", http.MethodPatch, "/policies/"+url.PathEscape(id), nil, body, false)
		},
	}
}

func dlmDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete-lifecycle-policy",
		Usage:     "delete a lifecycle policy (the snapshots it made stay); prints nothing",
		UsageText: "cowvol dlm delete-lifecycle-policy --policy-id ID",
		Flags:     []cli.Flag{policyIDFlag()},
		Action: func(c *cli.Context) error {
			id, err := requirePolicyID(c)
			if err != nil {
				return err
			}
			return dlmCall(c, "DeleteLifecyclePolicy", http.MethodDelete, "/policies/"+url.PathEscape(id), nil, nil, false)
		},
	}
}

func requirePolicyID(c *cli.Context) (string, error) {
	if err := noArgs(c); err != nil {
		return "", err
	}
	id := c.String("policy-id")
	if id == "" {
		return "", usageErrorf("%s: --policy-id is required", c.Command.Name)
	}
	return id, nil
}

// policyBody reads the fields of create and update that were given.
func policyBody(c *cli.Context) (map[string]any, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	body := map[string]any{}
	for flag, field := range map[string]string{"description": "Description", "state": "State", "execution-role-arn": "ExecutionRoleArn"} {
		if c.IsSet(flag) {
			body[field] = c.String(flag)
		}
	}
	if c.IsSet("policy-details") {
		raw, err := jsonArg(c.String("policy-details"))
		if err != nil {
			return nil, usageErrorf("%s: --policy-details: %v", c.Command.Name, err)
		}
		body["PolicyDetails"] = raw
	}
	return body, nil
}

// jsonArg reads a JSON argument given inline or as file://PATH.
func jsonArg(v string) (json.RawMessage, error) {
	b := []byte(v)
	if path, ok := strings.CutPrefix(v, "file://"); ok {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("not valid JSON")
	}
	return json.RawMessage(bytes.TrimSpace(b)), nil
}

// dlmCall sends a DLM request and prints its answer if print.
func dlmCall(c *cli.Context, op, method, path string, q url.Values, body map[string]any, print bool) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	cl := client(c)
	defer cl.Close()
	out, err := cl.DLM(c.Context, op, method, path, q, b)
	if err != nil {
		return opError(op, err)
	}
	if !print {
		return nil
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("%s: the daemon's answer is not JSON: %w", op, err)
	}
	return printJSON(c.App.Writer, v)
}
