package main

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"
)

// The tagging verbs of `aws dlm`: tag-resource, untag-resource and
// list-tags-for-resource, on a policy's ARN (get-lifecycle-policy prints
// it as PolicyArn).

func resourceArnFlag() cli.Flag {
	return &cli.StringFlag{Name: "resource-arn", Usage: "the policy's ARN (arn:aws:dlm:REGION:ACCOUNT:policy/ID)"}
}

func dlmTagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag-resource",
		Usage:     "add tags to a lifecycle policy (a key it has takes the new value); prints nothing",
		UsageText: "cowvol dlm tag-resource --resource-arn ARN --tags KEY=VALUE[,KEY=VALUE...]",
		Flags:     []cli.Flag{resourceArnFlag(), &cli.StringSliceFlag{Name: "tags", Usage: "KEY=VALUE"}},
		Action: func(c *cli.Context) error {
			path, err := tagsPath(c)
			if err != nil {
				return err
			}
			tags, err := tagMapArg(c, c.StringSlice("tags"))
			if err != nil {
				return err
			}
			if len(tags) == 0 {
				return usageErrorf("%s: --tags is required", c.Command.Name)
			}
			return dlmCall(c, "TagResource", http.MethodPost, path, nil, map[string]any{"Tags": tags}, false)
		},
	}
}

func dlmUntagCommand() *cli.Command {
	return &cli.Command{
		Name:      "untag-resource",
		Usage:     "remove tags from a lifecycle policy by key; prints nothing",
		UsageText: "cowvol dlm untag-resource --resource-arn ARN --tag-keys KEY [--tag-keys KEY ...]",
		Flags:     []cli.Flag{resourceArnFlag(), &cli.StringSliceFlag{Name: "tag-keys", Usage: "the keys to remove"}},
		Action: func(c *cli.Context) error {
			path, err := tagsPath(c)
			if err != nil {
				return err
			}
			keys := c.StringSlice("tag-keys")
			if len(keys) == 0 {
				return usageErrorf("%s: --tag-keys is required", c.Command.Name)
			}
			return dlmCall(c, "UntagResource", http.MethodDelete, path, url.Values{"tagKeys": keys}, nil, false)
		},
	}
}

func dlmListTagsCommand() *cli.Command {
	return &cli.Command{
		Name:      "list-tags-for-resource",
		Usage:     "print a lifecycle policy's tags",
		UsageText: "cowvol dlm list-tags-for-resource --resource-arn ARN",
		Flags:     []cli.Flag{resourceArnFlag()},
		Action: func(c *cli.Context) error {
			path, err := tagsPath(c)
			if err != nil {
				return err
			}
			return dlmCall(c, "ListTagsForResource", http.MethodGet, path, nil, nil, true)
		},
	}
}

// tagsPath is the request path of --resource-arn's tags.
func tagsPath(c *cli.Context) (string, error) {
	if err := noArgs(c); err != nil {
		return "", err
	}
	arn := c.String("resource-arn")
	if arn == "" {
		return "", usageErrorf("%s: --resource-arn is required", c.Command.Name)
	}
	return "/tags/" + url.PathEscape(arn), nil
}

// tagMapArg reads KEY=VALUE arguments (each may hold several, comma
// separated, as the aws CLI's shorthand) into a map.
func tagMapArg(c *cli.Context, args []string) (map[string]string, error) {
	m := map[string]string{}
	for _, arg := range args {
		for _, kv := range strings.Split(arg, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, usageErrorf("%s: --tags %q: want KEY=VALUE", c.Command.Name, kv)
			}
			m[k] = v
		}
	}
	return m, nil
}
