package control

import (
	"context"
	"net/url"
)

// DescribeAvailabilityZonesInput are the parameters of
// DescribeAvailabilityZones.
type DescribeAvailabilityZonesInput struct {
	ZoneNames []string
	ZoneIDs   []string
	// Filters: zone-name, zone-id, region-name, state, zone-type,
	// group-name, opt-in-status and the others EC2 has.
	Filters []Filter
	// AllAvailabilityZones is accepted as EC2 accepts it; the daemon has
	// one zone either way.
	AllAvailabilityZones bool
	DryRun               bool
}

// DescribeAvailabilityZones lists the daemon's zone (one).
func (c *Client) DescribeAvailabilityZones(ctx context.Context, in DescribeAvailabilityZonesInput) ([]AvailabilityZone, error) {
	f := url.Values{}
	setList(f, "ZoneName", in.ZoneNames)
	setList(f, "ZoneId", in.ZoneIDs)
	setFilters(f, in.Filters)
	setBool(f, "AllAvailabilityZones", in.AllAvailabilityZones)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeAvailabilityZonesResponse
	if err := c.call(ctx, "DescribeAvailabilityZones", f, &out); err != nil {
		return nil, err
	}
	return out.Zones.Items, nil
}

// DescribeRegionsInput are the parameters of DescribeRegions.
type DescribeRegionsInput struct {
	RegionNames []string
	// Filters: region-name, endpoint, opt-in-status.
	Filters []Filter
	// AllRegions is accepted as EC2 accepts it; the daemon has one
	// region either way.
	AllRegions bool
	DryRun     bool
}

// DescribeRegions lists the daemon's region (one).
func (c *Client) DescribeRegions(ctx context.Context, in DescribeRegionsInput) ([]Region, error) {
	f := url.Values{}
	setList(f, "RegionName", in.RegionNames)
	setFilters(f, in.Filters)
	setBool(f, "AllRegions", in.AllRegions)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeRegionsResponse
	if err := c.call(ctx, "DescribeRegions", f, &out); err != nil {
		return nil, err
	}
	return out.Regions.Items, nil
}
