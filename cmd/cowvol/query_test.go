package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const queryDoc = `{
  "Volumes": [
    {"VolumeId": "vol-1", "Size": 4, "Encrypted": false, "Tags": [{"Key": "team", "Value": "db"}, {"Key": "env", "Value": "prod"}]},
    {"VolumeId": "vol-2", "Size": 1, "Encrypted": true, "Tags": [{"Key": "team", "Value": "web"}]},
    {"VolumeId": "vol-3", "Size": 2, "Encrypted": false}
  ],
  "NextToken": "abc",
  "Weird-Key": 7
}`

func TestQuery(t *testing.T) {
	var doc any
	dec := json.NewDecoder(strings.NewReader(queryDoc))
	dec.UseNumber()
	doc, err := decodeTree(dec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"NextToken", `"abc"`},
		{"Missing", `null`},
		{"Volumes[0].VolumeId", `"vol-1"`},
		{"Volumes[-1].VolumeId", `"vol-3"`},
		{"Volumes[7].VolumeId", `null`},
		{"Volumes[*].VolumeId", `["vol-1","vol-2","vol-3"]`},
		{"Volumes[].Size", `[4,1,2]`},
		{"Volumes[*].Tags[*].Key", `[["team","env"],["team"]]`},
		{"Volumes[].Tags[].Key", `["team","env","team"]`},
		{"Volumes[*].Tags[0].Value", `["db","web"]`},
		{"Volumes[*].[VolumeId,Size]", `[["vol-1",4],["vol-2",1],["vol-3",2]]`},
		{"Volumes[0].[VolumeId,Encrypted]", `["vol-1",false]`},
		{"Volumes[0]", `{"VolumeId":"vol-1","Size":4,"Encrypted":false,"Tags":[{"Key":"team","Value":"db"},{"Key":"env","Value":"prod"}]}`},
		{`"Weird-Key"`, `7`},
		{"[NextToken,Volumes[1].VolumeId]", `["abc","vol-2"]`},
		{"NextToken.Foo", `null`},
		{"Volumes.VolumeId", `null`},
	} {
		q, err := parseQuery(tc.query)
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		got, err := marshalNoEscape(q.eval(doc))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s = %s (%v), want %s", tc.query, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "Volumes[", "Volumes[0", ".Volumes", "Volumes..Id", "Volumes[0]x", "Volumes[a", `"open`, "Volumes[,]", "a b"} {
		if _, err := parseQuery(bad); err == nil {
			t.Errorf("parseQuery(%q) succeeded", bad)
		}
	}
}

// TestTextOutput: --output text as aws writes it.
func TestTextOutput(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(queryDoc))
	dec.UseNumber()
	doc, err := decodeTree(dec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"Volumes[0].VolumeId", "vol-1\n"},
		{"Volumes[*].VolumeId", "vol-1\tvol-2\tvol-3\n"},
		{"Volumes[*].[VolumeId,Size]", "vol-1\t4\nvol-2\t1\nvol-3\t2\n"},
		{"Volumes[0].Encrypted", "False\n"},
		{"Missing", "None\n"},
		{"Volumes[5]", "None\n"},
		{"", "abc\t7\n" +
			"VOLUMES\tFalse\t4\tvol-1\n" +
			"TAGS\tteam\tdb\n" +
			"TAGS\tenv\tprod\n" +
			"VOLUMES\tTrue\t1\tvol-2\n" +
			"TAGS\tteam\tweb\n" +
			"VOLUMES\tFalse\t2\tvol-3\n"},
	} {
		v := doc
		if tc.query != "" {
			q, err := parseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			v = q.eval(doc)
		}
		var b strings.Builder
		formatText(&b, v, "", nil)
		if b.String() != tc.want {
			t.Errorf("%q: text %q, want %q", tc.query, b.String(), tc.want)
		}
	}
}
