package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The tagging verbs of `aws rbin`: tag-resource, untag-resource and
// list-tags-for-resource, on a rule's ARN (create-rule and get-rule print
// it as RuleArn).

func ruleArnFlag() cli.Flag {
	return &cli.StringFlag{Name: "resource-arn", Usage: "the rule's ARN (arn:aws:rbin:REGION:ACCOUNT:rule/ID)"}
}

// ruleArn reads --resource-arn, required.
func ruleArn(c *cli.Context) (string, error) {
	if err := noArgs(c); err != nil {
		return "", err
	}
	arn := c.String("resource-arn")
	if arn == "" {
		return "", usageErrorf("%s: --resource-arn is required", c.Command.Name)
	}
	return arn, nil
}

func rbinTagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag-resource",
		Usage:     "add tags to a retention rule (as aws rbin tag-resource); prints nothing",
		UsageText: "cowvol rbin tag-resource --resource-arn ARN --tags Key=K,Value=V [--tags ...]",
		Flags:     []cli.Flag{ruleArnFlag(), &cli.StringSliceFlag{Name: "tags", Usage: "`Key=K,Value=V` (repeatable)"}},
		Action: func(c *cli.Context) error {
			arn, err := ruleArn(c)
			if err != nil {
				return err
			}
			var tags []control.RuleTag
			for _, s := range splitStructs(c.StringSlice("tags")) {
				var t control.RuleTag
				if err := parseStruct("--tags", s, &t); err != nil {
					return err
				}
				tags = append(tags, t)
			}
			if len(tags) == 0 {
				return usageErrorf("tag-resource: --tags is required")
			}
			cl := client(c)
			defer cl.Close()
			return opError("TagResource", cl.TagRule(c.Context, arn, tags))
		},
	}
}

func rbinUntagCommand() *cli.Command {
	return &cli.Command{
		Name:      "untag-resource",
		Usage:     "remove tags from a retention rule by key (as aws rbin untag-resource); prints nothing",
		UsageText: "cowvol rbin untag-resource --resource-arn ARN --tag-keys KEY [--tag-keys KEY ...]",
		Flags:     []cli.Flag{ruleArnFlag(), &cli.StringSliceFlag{Name: "tag-keys", Usage: "the keys to remove"}},
		Action: func(c *cli.Context) error {
			arn, err := ruleArn(c)
			if err != nil {
				return err
			}
			keys := c.StringSlice("tag-keys")
			if len(keys) == 0 {
				return usageErrorf("untag-resource: --tag-keys is required")
			}
			cl := client(c)
			defer cl.Close()
			return opError("UntagResource", cl.UntagRule(c.Context, arn, keys))
		},
	}
}

func rbinListTagsCommand() *cli.Command {
	return &cli.Command{
		Name:      "list-tags-for-resource",
		Usage:     "print a retention rule's tags (as aws rbin list-tags-for-resource)",
		UsageText: "cowvol rbin list-tags-for-resource --resource-arn ARN",
		Flags:     []cli.Flag{ruleArnFlag()},
		Action: func(c *cli.Context) error {
			arn, err := ruleArn(c)
			if err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			tags, err := cl.RuleTags(c.Context, arn)
			if err != nil {
				return opError("ListTagsForResource", err)
			}
			if tags == nil {
				tags = []control.RuleTag{}
			}
			return printResult(c, struct{ Tags []control.RuleTag }{tags})
		},
	}
}
