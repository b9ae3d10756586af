package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The rule-lock verbs of `aws rbin`: lock-rule and unlock-rule, and the
// --lock-configuration of lock-rule and create-rule, in the aws shorthand
// (UnlockDelay={UnlockDelayValue=N,UnlockDelayUnit=DAYS}) or as JSON.

// lockConfigFlag is --lock-configuration.
func lockConfigFlag() cli.Flag {
	return &cli.StringFlag{Name: "lock-configuration",
		Usage: "`UnlockDelay={UnlockDelayValue=N,UnlockDelayUnit=DAYS}` (7 to 30 days) or its JSON: lock the rule (Region-level rules without exclusion tags only)"}
}

// parseLockConfig reads a --lock-configuration value.
func parseLockConfig(s string) (control.LockConfiguration, error) {
	var out control.LockConfiguration
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		if err := json.Unmarshal([]byte(s), &out); err != nil || out.UnlockDelay == nil || out.UnlockDelay.UnlockDelayValue == nil {
			return out, usageErrorf("--lock-configuration: %q is not valid JSON with UnlockDelay.UnlockDelayValue", s)
		}
		return out, nil
	}
	inner, prefixed := strings.CutPrefix(strings.TrimSpace(s), "UnlockDelay={")
	inner, closed := strings.CutSuffix(inner, "}")
	if !prefixed || !closed {
		return out, usageErrorf("--lock-configuration: %q is not UnlockDelay={UnlockDelayValue=N,UnlockDelayUnit=DAYS}", s)
	}
	var value, unit string
	if err := parseShorthand("--lock-configuration", inner, map[string]*string{"UnlockDelayValue": &value, "UnlockDelayUnit": &unit}); err != nil {
		return out, err
	}
	n, err := strconv.Atoi(value)
	if err != nil {
		return out, usageErrorf("--lock-configuration: UnlockDelayValue %q is not a number", value)
	}
	return control.LockConfiguration{UnlockDelay: &control.UnlockDelay{UnlockDelayValue: &n, UnlockDelayUnit: unit}}, nil
}

// ruleOutput is a rule as the aws CLI prints it: LockEndTime in ISO 8601.
type ruleOutput struct {
	control.RecycleRuleAnswer
	LockEndTime string `json:"LockEndTime,omitempty"`
}

// printRule prints rule r as the aws CLI does.
func printRule(c *cli.Context, r control.RecycleRuleAnswer) error {
	out := ruleOutput{RecycleRuleAnswer: r}
	if r.LockEndTime != nil {
		t := time.UnixMilli(int64(*r.LockEndTime * 1000)).UTC()
		out.LockEndTime = t.Format("2006-01-02T15:04:05.000000-07:00")
	}
	return printResult(c, out)
}

func lockRuleCommand() *cli.Command {
	return &cli.Command{
		Name:      "lock-rule",
		Usage:     "lock a Region-level retention rule (as aws rbin lock-rule): it cannot be changed or deleted until unlocked and its unlock delay over; prints it",
		UsageText: "cowvol rbin lock-rule --identifier ID --lock-configuration UnlockDelay={UnlockDelayValue=N,UnlockDelayUnit=DAYS}",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "identifier", Usage: "the rule"}, lockConfigFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("identifier")
			if id == "" || c.String("lock-configuration") == "" {
				return usageErrorf("lock-rule: --identifier and --lock-configuration are required")
			}
			lc, err := parseLockConfig(c.String("lock-configuration"))
			if err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.LockRule(c.Context, id, lc)
			if err != nil {
				return opError("LockRule", err)
			}
			return printRule(c, out)
		},
	}
}

func unlockRuleCommand() *cli.Command {
	return &cli.Command{
		Name:      "unlock-rule",
		Usage:     "unlock a retention rule (as aws rbin unlock-rule): it is pending_unlock until its unlock delay ends (LockEndTime); prints it",
		UsageText: "cowvol rbin unlock-rule --identifier ID",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "identifier", Usage: "the rule"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.String("identifier") == "" {
				return usageErrorf("unlock-rule: --identifier is required")
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.UnlockRule(c.Context, c.String("identifier"))
			if err != nil {
				return opError("UnlockRule", err)
			}
			return printRule(c, out)
		},
	}
}
