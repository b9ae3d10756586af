package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestContribNamesExist keeps the Grafana dashboard and the alert rules in
// contrib/ in step with the metrics: every cowvol_ name they query is one
// this package exports (histograms with their _bucket, _sum and _count).
func TestContribNamesExist(t *testing.T) {
	m := New("v0", "abc")
	known := map[string]bool{}
	descName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for _, c := range []prometheus.Collector{m.IO, m.stores, m.probe, m.gc, NewEngineCollector(nil, nil), NewDiskCollector("", ""),
		buildInfo("v0", "abc")} {
		ch := make(chan *prometheus.Desc, 64)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			name := descName.FindStringSubmatch(d.String())
			if name == nil {
				t.Fatalf("no name in %s", d)
			}
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				known[name[1]+suffix] = true
			}
		}
	}
	used := regexp.MustCompile(`cowvol_[a-z_]+`)
	for _, file := range []string{"../contrib/grafana/cowvol-dashboard.json", "../contrib/prometheus/cowvol-alerts.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(file, ".json") && !json.Valid(b) {
			t.Errorf("%s is not valid JSON", file)
		}
		n := 0
		for _, name := range used.FindAllString(string(b), -1) {
			if strings.HasSuffix(name, "_") {
				continue
			}
			n++
			if !known[name] {
				t.Errorf("%s queries %s, which the daemon does not export", file, name)
			}
		}
		if n == 0 {
			t.Errorf("%s queries no cowvol metric", file)
		}
	}
}
