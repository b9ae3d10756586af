package main

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// `cowvol rbin VERB`: the Recycle Bin's retention rules, as `aws rbin`.
// Structures are given in the aws shorthand (Name=value,Name=value) or as
// JSON; lists repeat the flag or follow it, space separated.

func rbinCommand() *cli.Command {
	return &cli.Command{
		Name:  "rbin",
		Usage: "Recycle Bin retention rules (as aws rbin): deleted snapshots they match stay restorable for their retention period",
		Subcommands: []*cli.Command{
			createRuleCommand(), listRulesCommand(), getRuleCommand(), updateRuleCommand(), deleteRuleCommand(),
			lockRuleCommand(), unlockRuleCommand(), rbinTagCommand(), rbinUntagCommand(), rbinListTagsCommand(),
		},
	}
}

// ruleFlags are the flags of create-rule and update-rule.
func ruleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "retention-period", Usage: "`RetentionPeriodValue=N,RetentionPeriodUnit=DAYS` (1 to 3650 days)"},
		&cli.StringFlag{Name: "resource-type", Usage: "EBS_SNAPSHOT (the only type cowvol has)"},
		&cli.StringFlag{Name: "description", Usage: "up to 255 characters"},
		&cli.StringSliceFlag{Name: "resource-tags", Usage: "`ResourceTagKey=K[,ResourceTagValue=V]`: snapshots with any of these tags match (repeatable); none: every snapshot"},
		&cli.StringSliceFlag{Name: "exclude-resource-tags", Usage: "`ResourceTagKey=K[,ResourceTagValue=V]`: for a rule without resource tags, snapshots with any of these do not match"},
	}
}

func createRuleCommand() *cli.Command {
	return &cli.Command{
		Name:  "create-rule",
		Usage: "create a retention rule (as aws rbin create-rule); prints it",
		UsageText: "cowvol rbin create-rule --retention-period RetentionPeriodValue=N,RetentionPeriodUnit=DAYS --resource-type EBS_SNAPSHOT\n" +
			"   [--description D] [--resource-tags ResourceTagKey=K,ResourceTagValue=V ...] [--exclude-resource-tags ...] [--tags Key=K,Value=V ...]\n" +
			"   [--lock-configuration UnlockDelay={UnlockDelayValue=N,UnlockDelayUnit=DAYS}]",
		Flags: append(ruleFlags(), &cli.StringSliceFlag{Name: "tags", Usage: "the rule's own tags, `Key=K,Value=V` (repeatable)"}, lockConfigFlag()),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			in := control.CreateRuleInput{ResourceType: c.String("resource-type"), Description: c.String("description")}
			if in.ResourceType == "" || c.String("retention-period") == "" {
				return usageErrorf("create-rule: --retention-period and --resource-type are required")
			}
			var err error
			if in.RetentionPeriod, err = retentionFlag(c); err != nil {
				return err
			}
			if in.ResourceTags, err = resourceTagsFlag(c, "resource-tags"); err != nil {
				return err
			}
			if in.ExcludeResourceTags, err = resourceTagsFlag(c, "exclude-resource-tags"); err != nil {
				return err
			}
			for _, s := range splitStructs(c.StringSlice("tags")) {
				var t control.RuleTag
				if err := parseStruct("--tags", s, &t); err != nil {
					return err
				}
				in.Tags = append(in.Tags, t)
			}
			if c.IsSet("lock-configuration") {
				lc, err := parseLockConfig(c.String("lock-configuration"))
				if err != nil {
					return err
				}
				in.LockConfiguration = &lc
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.CreateRule(c.Context, in)
			if err != nil {
				return opError("CreateRule", err)
			}
			return printRule(c, out)
		},
	}
}

func updateRuleCommand() *cli.Command {
	return &cli.Command{
		Name:  "update-rule",
		Usage: "change a retention rule (as aws rbin update-rule): what is given replaces what the rule had; prints it",
		UsageText: "cowvol rbin update-rule --identifier ID [--retention-period RetentionPeriodValue=N,RetentionPeriodUnit=DAYS]\n" +
			"   [--description D] [--resource-tags ResourceTagKey=K,ResourceTagValue=V ...] [--exclude-resource-tags ...]",
		Flags: append(ruleFlags(), &cli.StringFlag{Name: "identifier", Usage: "the rule to change"}),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("identifier")
			if id == "" {
				return usageErrorf("update-rule: --identifier is required")
			}
			var in control.UpdateRuleInput
			if c.IsSet("description") {
				d := c.String("description")
				in.Description = &d
			}
			if c.IsSet("resource-type") {
				rt := c.String("resource-type")
				in.ResourceType = &rt
			}
			var err error
			if c.IsSet("retention-period") {
				if in.RetentionPeriod, err = retentionFlag(c); err != nil {
					return err
				}
			}
			for name, dst := range map[string]**[]control.ResourceTag{"resource-tags": &in.ResourceTags, "exclude-resource-tags": &in.ExcludeResourceTags} {
				if c.IsSet(name) {
					tags, err := resourceTagsFlag(c, name)
					if err != nil {
						return err
					}
					*dst = &tags
				}
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.UpdateRule(c.Context, id, in)
			if err != nil {
				return opError("UpdateRule", err)
			}
			return printRule(c, out)
		},
	}
}

func getRuleCommand() *cli.Command {
	return &cli.Command{
		Name:      "get-rule",
		Usage:     "describe a retention rule (as aws rbin get-rule)",
		UsageText: "cowvol rbin get-rule --identifier ID",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "identifier", Usage: "the rule"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.String("identifier") == "" {
				return usageErrorf("get-rule: --identifier is required")
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.GetRule(c.Context, c.String("identifier"))
			if err != nil {
				return opError("GetRule", err)
			}
			return printRule(c, out)
		},
	}
}

func deleteRuleCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete-rule",
		Usage:     "delete a retention rule (as aws rbin delete-rule): snapshots in the bin keep their retention; prints nothing",
		UsageText: "cowvol rbin delete-rule --identifier ID",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "identifier", Usage: "the rule"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.String("identifier") == "" {
				return usageErrorf("delete-rule: --identifier is required")
			}
			cl := client(c)
			defer cl.Close()
			return opError("DeleteRule", cl.DeleteRule(c.Context, c.String("identifier")))
		},
	}
}

func listRulesCommand() *cli.Command {
	return &cli.Command{
		Name:      "list-rules",
		Usage:     "list the retention rules (as aws rbin list-rules), every page",
		UsageText: "cowvol rbin list-rules --resource-type EBS_SNAPSHOT [--resource-tags ResourceTagKey=K,ResourceTagValue=V ...] [--exclude-resource-tags ...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resource-type", Usage: "EBS_SNAPSHOT"},
			&cli.StringSliceFlag{Name: "resource-tags", Usage: "only rules with these resource tags"},
			&cli.StringSliceFlag{Name: "exclude-resource-tags", Usage: "only rules with these exclusion tags"},
			&cli.StringFlag{Name: "lock-state", Usage: "only rules in this lock state: locked, pending_unlock or unlocked"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			in := control.ListRulesInput{ResourceType: c.String("resource-type"), LockState: c.String("lock-state")}
			if in.ResourceType == "" {
				return usageErrorf("list-rules: --resource-type is required")
			}
			var err error
			if in.ResourceTags, err = resourceTagsFlag(c, "resource-tags"); err != nil {
				return err
			}
			if in.ExcludeResourceTags, err = resourceTagsFlag(c, "exclude-resource-tags"); err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			all := control.ListRulesAnswer{Rules: []control.RecycleRuleSummary{}}
			for {
				page, err := cl.ListRules(c.Context, in)
				if err != nil {
					return opError("ListRules", err)
				}
				all.Rules = append(all.Rules, page.Rules...)
				if page.NextToken == "" {
					return printResult(c, all)
				}
				in.NextToken = page.NextToken
			}
		},
	}
}

// retentionFlag reads --retention-period.
func retentionFlag(c *cli.Context) (*control.RetentionPeriod, error) {
	var rp struct {
		RetentionPeriodValue string
		RetentionPeriodUnit  string
	}
	s := c.String("retention-period")
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		var out control.RetentionPeriod
		if err := json.Unmarshal([]byte(s), &out); err != nil || out.RetentionPeriodValue == nil {
			return nil, usageErrorf("--retention-period: %q is not valid JSON with RetentionPeriodValue", s)
		}
		return &out, nil
	}
	if err := parseShorthand("--retention-period", s, map[string]*string{
		"RetentionPeriodValue": &rp.RetentionPeriodValue, "RetentionPeriodUnit": &rp.RetentionPeriodUnit}); err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(rp.RetentionPeriodValue)
	if err != nil {
		return nil, usageErrorf("--retention-period: RetentionPeriodValue %q is not a number", rp.RetentionPeriodValue)
	}
	return &control.RetentionPeriod{RetentionPeriodValue: &n, RetentionPeriodUnit: rp.RetentionPeriodUnit}, nil
}

// resourceTagsFlag reads a list of ResourceTagKey=K,ResourceTagValue=V.
func resourceTagsFlag(c *cli.Context, name string) ([]control.ResourceTag, error) {
	var out []control.ResourceTag
	for _, s := range splitStructs(c.StringSlice(name)) {
		var t control.ResourceTag
		if err := parseStruct("--"+name, s, &t); err != nil {
			return nil, err
		}
		if t.ResourceTagKey == "" {
			return nil, usageErrorf("--%s: %q has no ResourceTagKey", name, s)
		}
		out = append(out, t)
	}
	return out, nil
}

// splitStructs expands a JSON list given as one value into its items.
func splitStructs(vals []string) []string {
	var out []string
	for _, v := range vals {
		var items []json.RawMessage
		if strings.HasPrefix(strings.TrimSpace(v), "[") && json.Unmarshal([]byte(v), &items) == nil {
			for _, it := range items {
				out = append(out, string(it))
			}
			continue
		}
		out = append(out, v)
	}
	return out
}

// parseStruct reads one structure (ResourceTag or RuleTag) in the aws
// shorthand or as a JSON object.
func parseStruct(flag, s string, dst any) error {
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		if err := json.Unmarshal([]byte(s), dst); err != nil {
			return usageErrorf("%s: %q is not valid JSON: %v", flag, s, err)
		}
		return nil
	}
	fields := map[string]*string{}
	switch t := dst.(type) {
	case *control.ResourceTag:
		fields["ResourceTagKey"], fields["ResourceTagValue"] = &t.ResourceTagKey, &t.ResourceTagValue
	case *control.RuleTag:
		fields["Key"], fields["Value"] = &t.Key, &t.Value
	}
	return parseShorthand(flag, s, fields)
}

// parseShorthand reads Name=value,Name=value into fields (a value may not
// contain a comma followed by a known field name).
func parseShorthand(flag, s string, fields map[string]*string) error {
	var cur *string
	for _, part := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(part, "=")
		if f, known := fields[name]; ok && known {
			*f, cur = value, f
			continue
		}
		if cur == nil {
			return usageErrorf("%s: %q is not Name=value,... (names: %s)", flag, s, fieldNames(fields))
		}
		*cur += "," + part // a comma inside a value
	}
	return nil
}

func fieldNames(fields map[string]*string) string {
	var names []string
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
