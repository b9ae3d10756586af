package control

import (
	"context"
	"encoding/xml"
	"strings"
)

// A daemon is one region (its Options.Region, the daemon's --region) with
// one Availability Zone, the region's name and "a" (us-east-1a): SDK-based
// tools ask DescribeRegions and DescribeAvailabilityZones first, and many
// check that a zone name is a region and a letter. Every volume is in that
// zone; CreateVolume accepts it by name (AvailabilityZone) or by ID
// (AvailabilityZoneId), and nothing else.

// Zone and region attributes, as EC2 reports them for a standard zone.
const (
	zoneStateAvailable   = "available"
	zoneTypeAvailability = "availability-zone"
	optInNotRequired     = "opt-in-not-required"
)

// ZoneName is the name of the one Availability Zone of a daemon in region.
func ZoneName(region string) string { return region + "a" }

// ZoneID is the ID of the Availability Zone of a daemon in region, shaped
// as EC2's (us-east-1 -> use1-az1, eu-west-3 -> euw3-az1, ap-southeast-2 ->
// apse2-az1); a region name of another shape gets the region and -az1.
func ZoneID(region string) string {
	parts := strings.Split(region, "-")
	if len(parts) == 3 && parts[0] != "" && parts[2] != "" && strings.Trim(parts[2], "0123456789") == "" {
		if dir, ok := regionDirections[parts[1]]; ok {
			return parts[0] + dir + parts[2] + "-az1"
		}
	}
	return region + "-az1"
}

// regionDirections abbreviate the middle part of a region name in zone IDs.
var regionDirections = map[string]string{
	"east": "e", "west": "w", "north": "n", "south": "s", "central": "c",
	"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
}

// DescribeAvailabilityZonesResponse answers DescribeAvailabilityZones.
type DescribeAvailabilityZonesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeAvailabilityZonesResponse"`
	ResponseMetadata
	Zones AvailabilityZoneInfo `xml:"availabilityZoneInfo"`
}

// AvailabilityZoneInfo is the <availabilityZoneInfo> of
// DescribeAvailabilityZones, there even when empty, as EC2 sends it.
type AvailabilityZoneInfo struct {
	Items []AvailabilityZone `xml:"item"`
}

// AvailabilityZone is one zone, with EC2's element names.
type AvailabilityZone struct {
	ZoneName           string       `xml:"zoneName"`
	OptInStatus        string       `xml:"optInStatus"`
	ZoneState          string       `xml:"zoneState"`
	RegionName         string       `xml:"regionName"`
	GroupName          string       `xml:"groupName"`
	NetworkBorderGroup string       `xml:"networkBorderGroup"`
	ZoneID             string       `xml:"zoneId"`
	ZoneType           string       `xml:"zoneType"`
	Messages           ZoneMessages `xml:"messageSet"`
}

// ZoneMessages are the <item>s of a zone's <messageSet>: always none.
type ZoneMessages struct {
	Items []ZoneMessage `xml:"item"`
}

// ZoneMessage is a message about a zone.
type ZoneMessage struct {
	Message string `xml:"message"`
}

// DescribeRegionsResponse answers DescribeRegions.
type DescribeRegionsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeRegionsResponse"`
	ResponseMetadata
	Regions RegionInfo `xml:"regionInfo"`
}

// RegionInfo is the <regionInfo> of DescribeRegions.
type RegionInfo struct {
	Items []Region `xml:"item"`
}

// Region is one region, with EC2's element names. Its endpoint is the
// host the request was sent to (the daemon's listener), not an AWS one.
type Region struct {
	RegionName     string `xml:"regionName"`
	RegionEndpoint string `xml:"regionEndpoint"`
	OptInStatus    string `xml:"optInStatus"`
}

// zoneKind gives DescribeAvailabilityZones EC2's filters (group-long-name
// matches the empty string: the zone has no long name).
var zoneKind = &describeKind[AvailabilityZone]{
	attrs: map[string]func(*AvailabilityZone) string{
		"group-long-name":  func(*AvailabilityZone) string { return "" },
		"group-name":       func(z *AvailabilityZone) string { return z.GroupName },
		"message":          func(*AvailabilityZone) string { return "" },
		"opt-in-status":    func(z *AvailabilityZone) string { return z.OptInStatus },
		"parent-zone-id":   func(*AvailabilityZone) string { return "" },
		"parent-zone-name": func(*AvailabilityZone) string { return "" },
		"region-name":      func(z *AvailabilityZone) string { return z.RegionName },
		"state":            func(z *AvailabilityZone) string { return z.ZoneState },
		"zone-id":          func(z *AvailabilityZone) string { return z.ZoneID },
		"zone-name":        func(z *AvailabilityZone) string { return z.ZoneName },
		"zone-type":        func(z *AvailabilityZone) string { return z.ZoneType },
	},
}

// regionKind gives DescribeRegions EC2's filters.
var regionKind = &describeKind[Region]{
	attrs: map[string]func(*Region) string{
		"endpoint":      func(r *Region) string { return r.RegionEndpoint },
		"opt-in-status": func(r *Region) string { return r.OptInStatus },
		"region-name":   func(r *Region) string { return r.RegionName },
	},
}

// availabilityZone is the daemon's zone on the wire.
func (s *Server) availabilityZone() AvailabilityZone {
	return AvailabilityZone{
		ZoneName:           s.zone,
		OptInStatus:        optInNotRequired,
		ZoneState:          zoneStateAvailable,
		RegionName:         s.region,
		GroupName:          s.region + "-zg-1",
		NetworkBorderGroup: s.region,
		ZoneID:             s.zoneID,
		ZoneType:           zoneTypeAvailability,
	}
}

// describeAvailabilityZones: ZoneName.N, ZoneId.N, AllAvailabilityZones
// (there are no other zones to include), Filter.N, DryRun. A name or ID
// of another zone is refused, naming the daemon's.
func (s *Server) describeAvailabilityZones(_ context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	if _, e := p.boolean("AllAvailabilityZones"); e != nil {
		return nil, e
	}
	names, e := p.stringList("ZoneName")
	if e != nil {
		return nil, e
	}
	ids, e := p.stringList("ZoneId")
	if e != nil {
		return nil, e
	}
	filters, e := readKindFilters(p, zoneKind)
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	for _, n := range names {
		if n != s.zone {
			return nil, s.invalidZone(n)
		}
	}
	for _, id := range ids {
		if id != s.zoneID {
			return nil, invalidValue("Invalid availability zone ID: [%s]. This daemon's zone is %s (ID %s).", clip(id), s.zone, s.zoneID)
		}
	}
	if dryRun {
		return nil, errDryRun()
	}
	out := &DescribeAvailabilityZonesResponse{Zones: AvailabilityZoneInfo{Items: []AvailabilityZone{}}}
	if z := s.availabilityZone(); zoneKind.matches(&z, filters) {
		out.Zones.Items = append(out.Zones.Items, z)
	}
	return out, nil
}

// invalidZone refuses a zone that is not the daemon's, naming the valid
// one (EC2's message, and a hint).
func (s *Server) invalidZone(zone string) *APIError {
	return invalidValue("Invalid availability zone: [%s]. Valid zones: %s.", clip(zone), s.zone)
}

// describeRegions: RegionName.N, AllRegions (there are no other regions
// to include), Filter.N, DryRun. Another region's name is refused, naming
// the daemon's.
func (s *Server) describeRegions(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	if _, e := p.boolean("AllRegions"); e != nil {
		return nil, e
	}
	names, e := p.stringList("RegionName")
	if e != nil {
		return nil, e
	}
	filters, e := readKindFilters(p, regionKind)
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	for _, n := range names {
		if n != s.region {
			return nil, invalidValue("Invalid region: [%s]. This daemon serves region %s only.", clip(n), s.region)
		}
	}
	if dryRun {
		return nil, errDryRun()
	}
	out := &DescribeRegionsResponse{Regions: RegionInfo{Items: []Region{}}}
	r := Region{RegionName: s.region, RegionEndpoint: requestHost(ctx), OptInStatus: optInNotRequired}
	if regionKind.matches(&r, filters) {
		out.Regions.Items = append(out.Regions.Items, r)
	}
	return out, nil
}

// readKindFilters reads Filter.N and refuses a name k does not know.
func readKindFilters[T any](p *params, k *describeKind[T]) ([]Filter, *APIError) {
	filters, e := readFilters(p)
	if e != nil {
		return nil, e
	}
	for _, f := range filters {
		if !k.validFilter(f.Name) {
			return nil, invalidValue("The filter '%s' is invalid", clip(f.Name))
		}
	}
	return filters, nil
}

type hostKey struct{}

// withRequestHost returns ctx carrying the Host the request was sent to.
func withRequestHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, host)
}

// requestHost is the Host the request was sent to ("" if unknown).
func requestHost(ctx context.Context) string {
	h, _ := ctx.Value(hostKey{}).(string)
	return h
}
