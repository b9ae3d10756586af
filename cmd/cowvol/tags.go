package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// create-tags, delete-tags and describe-tags, as aws ec2 has them: the
// resources are --resources (repeatable, comma- or space-separated), the
// tags the aws shorthand --tags Key=k,Value=v (or cowvol's --tag k=v).

func createTagsCommand() *cli.Command {
	return &cli.Command{
		Name:      "create-tags",
		Usage:     "add or overwrite tags of volumes and snapshots (as aws ec2 create-tags); prints nothing",
		UsageText: "cowvol create-tags --resources ID [ID ...] --tags Key=K,Value=V [...] [--tag K=V ...] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "resources", Usage: "volume and snapshot IDs"},
			&cli.StringSliceFlag{Name: "tags", Usage: "aws shorthand `Key=K,Value=V` (repeatable)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` (repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without changing anything"},
		},
		Action: func(c *cli.Context) error {
			a, err := tagVerbArgs(c)
			if err != nil {
				return err
			}
			ids := a.resources
			tags, err := tagFlag(c)
			if err != nil {
				return err
			}
			for _, kv := range a.tag {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageErrorf("--tag: %q is not KEY=VALUE", kv)
				}
				tags = append(tags, control.Tag{Key: k, Value: v})
			}
			for _, s := range a.tags {
				ref, err := parseTagShorthand(s)
				if err != nil {
					return err
				}
				tags = append(tags, control.Tag{Key: ref.Key, Value: deref(ref.Value)})
			}
			switch {
			case len(ids) == 0:
				return usageErrorf("create-tags: --resources is required")
			case len(tags) == 0:
				return usageErrorf("create-tags: --tags is required")
			}
			cl := client(c)
			defer cl.Close()
			return opError("CreateTags", cl.CreateTags(c.Context, ids, tags, a.dryRun))
		},
	}
}

func deleteTagsCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete-tags",
		Usage:     "delete tags of volumes and snapshots (as aws ec2 delete-tags): by key, by key and value, or every tag without --tags; prints nothing",
		UsageText: "cowvol delete-tags --resources ID [ID ...] [--tags Key=K[,Value=V] ...] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "resources", Usage: "volume and snapshot IDs"},
			&cli.StringSliceFlag{Name: "tags", Usage: "aws shorthand `Key=K[,Value=V]`: with a value, only a tag of that value goes (repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without changing anything"},
		},
		Action: func(c *cli.Context) error {
			a, err := tagVerbArgs(c)
			if err != nil {
				return err
			}
			ids := a.resources
			if len(ids) == 0 {
				return usageErrorf("delete-tags: --resources is required")
			}
			if len(a.tag) > 0 {
				return usageErrorf("delete-tags: name tags with --tags Key=K[,Value=V]")
			}
			var refs []control.TagRef
			for _, s := range a.tags {
				ref, err := parseTagShorthand(s)
				if err != nil {
					return err
				}
				refs = append(refs, ref)
			}
			cl := client(c)
			defer cl.Close()
			return opError("DeleteTags", cl.DeleteTags(c.Context, ids, refs, a.dryRun))
		},
	}
}

// parseTagShorthand parses the aws shorthand Key=k[,Value=v] (Value= with
// nothing after it: the empty value).
func parseTagShorthand(s string) (control.TagRef, error) {
	rest, ok := strings.CutPrefix(s, "Key=")
	if !ok {
		return control.TagRef{}, usageErrorf("--tags: %q is not Key=KEY,Value=VALUE", s)
	}
	key, value, hasValue := strings.Cut(rest, ",Value=")
	if key == "" {
		return control.TagRef{}, usageErrorf("--tags: %q has an empty key", s)
	}
	ref := control.TagRef{Key: key}
	if hasValue {
		ref.Value = &value
	}
	return ref, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func describeTagsCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-tags",
		Usage: "list the tags of this account's volumes and snapshots (as aws ec2 describe-tags)",
		UsageText: "cowvol describe-tags [--filter NAME=V1,V2 ...] [--filters Name=NAME,Values=V1,V2 ...]\n" +
			"   [--max-results N] [--next-token T] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: key, value, resource-id, resource-type (volume, snapshot); values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 1000)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			in := control.DescribeTagsInput{MaxResults: c.Int("max-results"), NextToken: c.String("next-token"), DryRun: c.Bool("dry-run")}
			var err error
			if in.Filters, err = filterFlags(c); err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			res, err := cl.DescribeTags(c.Context, in)
			if err != nil {
				return opError("DescribeTags", err)
			}
			type tagDescJSON struct {
				Key          string `json:"Key"`
				ResourceID   string `json:"ResourceId"`
				ResourceType string `json:"ResourceType"`
				Value        string `json:"Value"`
			}
			out := struct {
				Tags      []tagDescJSON `json:"Tags"`
				NextToken string        `json:"NextToken,omitempty"`
			}{Tags: []tagDescJSON{}, NextToken: res.NextToken}
			for _, d := range res.Tags {
				out.Tags = append(out.Tags, tagDescJSON{Key: d.Key, ResourceID: d.ResourceID, ResourceType: d.ResourceType, Value: d.Value})
			}
			return printResult(c, out)
		},
	}
}

// tagArgs are the lists of create-tags and delete-tags.
type tagArgs struct {
	resources, tags, tag []string
	dryRun               bool
}

// tagVerbArgs reads --resources, --tags, --tag and --dry-run as aws takes
// them: values space-separated after their flag (`--resources a b --tags
// Key=k,Value=v Key=l,Value=w`). The flag parser stops at the first value
// that is not a flag's own; what follows it is sorted here: values go to
// the flag before them (a value before any flag: a tag if it reads
// Key=..., else a resource), and the flags among them are read too.
func tagVerbArgs(c *cli.Context) (tagArgs, error) {
	a := tagArgs{resources: splitCommas(c.StringSlice("resources")), tags: c.StringSlice("tags"), dryRun: c.Bool("dry-run")}
	var list *[]string
	for _, arg := range c.Args().Slice() {
		switch {
		case arg == "--resources":
			list = &a.resources
		case arg == "--tags":
			list = &a.tags
		case arg == "--tag" && c.Command.Name == "create-tags":
			list = &a.tag
		case arg == "--dry-run":
			a.dryRun, list = true, nil
		case strings.HasPrefix(arg, "-"):
			return a, usageErrorf("%s: flag %s must come before the resource IDs and tags", c.Command.Name, arg)
		case list == &a.resources || list == nil && !strings.HasPrefix(arg, "Key="):
			a.resources = append(a.resources, splitCommas([]string{arg})...)
		case list == nil:
			a.tags = append(a.tags, arg)
		default:
			*list = append(*list, arg)
		}
	}
	return a, nil
}
