package control

import (
	"context"
	"encoding/xml"
	"slices"

	"github.com/cowvol/cowvol/cow"
)

// Volume and snapshot attributes, as tools ask EC2 for them:
//
//   - DescribeVolumeAttribute: autoEnableIO is true (cowvol never disables
//     a volume's I/O: an impaired volume fails the reads of the blocks it
//     cannot read and serves the others, see DescribeVolumeStatus), and
//     productCodes is empty (no volume carries a Marketplace product code).
//   - DescribeSnapshotAttribute: createVolumePermission lists the
//     accounts (userId) and the group all that may create volumes from
//     the snapshot besides its owner; productCodes is empty.
//   - ModifySnapshotAttribute adds and removes those grants on a snapshot
//     of this account (snapshot_permissions.go).

// Attribute names.
const (
	attrAutoEnableIO           = "autoEnableIO"
	attrProductCodes           = "productCodes"
	attrCreateVolumePermission = "createVolumePermission"
)

// DescribeVolumeAttributeResponse answers DescribeVolumeAttribute: the
// volume ID and the one attribute asked for.
type DescribeVolumeAttributeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeVolumeAttributeResponse"`
	ResponseMetadata
	VolumeID     string                 `xml:"volumeId"`
	AutoEnableIO *AttributeBooleanValue `xml:"autoEnableIO,omitempty"`
	ProductCodes *ProductCodes          `xml:"productCodes,omitempty"`
}

// AttributeBooleanValue is EC2's <value> wrapper of a boolean attribute.
type AttributeBooleanValue struct {
	Value bool `xml:"value"`
}

// ProductCodes are the <item>s of a <productCodes>: always none.
type ProductCodes struct {
	Items []ProductCode `xml:"item"`
}

// ProductCode is a Marketplace product code.
type ProductCode struct {
	ProductCode string `xml:"productCode"`
	Type        string `xml:"type"`
}

// DescribeSnapshotAttributeResponse answers DescribeSnapshotAttribute: the
// snapshot ID and the one attribute asked for.
type DescribeSnapshotAttributeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeSnapshotAttributeResponse"`
	ResponseMetadata
	SnapshotID             string                   `xml:"snapshotId"`
	CreateVolumePermission *CreateVolumePermissions `xml:"createVolumePermission,omitempty"`
	ProductCodes           *ProductCodes            `xml:"productCodes,omitempty"`
}

// CreateVolumePermissions are the <item>s of a <createVolumePermission>:
// who may create volumes from a snapshot besides its owner.
type CreateVolumePermissions struct {
	Items []CreateVolumePermission `xml:"item"`
}

// CreateVolumePermission is one grant: an account (UserID) or everyone
// (Group "all").
type CreateVolumePermission struct {
	UserID string `xml:"userId,omitempty"`
	Group  string `xml:"group,omitempty"`
}

// ModifySnapshotAttributeResponse answers ModifySnapshotAttribute.
type ModifySnapshotAttributeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ ModifySnapshotAttributeResponse"`
	ResponseMetadata
	Return bool `xml:"return"`
}

// readAttribute reads the required Attribute parameter, one of valid.
func readAttribute(p *params, valid ...string) (string, *APIError) {
	attr, ok := p.get("Attribute")
	switch {
	case !ok || attr == "":
		return "", missingParam("Attribute")
	case !slices.Contains(valid, attr):
		return "", invalidValue("Value (%s) for parameter attribute is invalid. Expected one of: %s.", clip(attr), joinOr(valid))
	}
	return attr, nil
}

func joinOr(vs []string) string {
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	out := ""
	for i, v := range vs {
		switch {
		case i == len(vs)-1:
			out += " or " + v
		case i > 0:
			out += ", " + v
		default:
			out = v
		}
	}
	return out
}

// describeVolumeAttribute: VolumeId, Attribute (autoEnableIO,
// productCodes), DryRun.
func (s *Server) describeVolumeAttribute(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("VolumeId")
	attr, attrErr := readAttribute(p, attrAutoEnableIO, attrProductCodes)
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case id == "":
		return nil, missingParam("VolumeId")
	case !cow.ValidVolumeID(id):
		return nil, malformedVolumeID(id)
	case attrErr != nil:
		return nil, attrErr
	}
	if err := s.volumeExists(ctx, id); err != nil {
		return nil, err
	}
	if dryRun {
		return nil, errDryRun()
	}
	out := &DescribeVolumeAttributeResponse{VolumeID: id}
	switch attr {
	case attrAutoEnableIO:
		out.AutoEnableIO = &AttributeBooleanValue{Value: true}
	case attrProductCodes:
		out.ProductCodes = &ProductCodes{}
	}
	return out, nil
}

// volumeExists answers InvalidVolume.NotFound for a volume there is no
// (or no longer a) volume of that ID.
func (s *Server) volumeExists(ctx context.Context, id string) error {
	vols, err := s.backend.DescribeVolumes(ctx)
	if err != nil {
		return backendErr("describe volumes", err, id)
	}
	for _, v := range vols {
		if v.ID == id && v.State != cow.VolumeDeleting {
			return nil
		}
	}
	return volumeNotFound(id)
}

// describeSnapshotAttribute: SnapshotId, Attribute
// (createVolumePermission, productCodes), DryRun.
func (s *Server) describeSnapshotAttribute(_ context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("SnapshotId")
	attr, attrErr := readAttribute(p, attrCreateVolumePermission, attrProductCodes)
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case id == "":
		return nil, missingParam("SnapshotId")
	case !cow.ValidSnapshotID(id):
		return nil, malformedSnapshotID(id)
	case attrErr != nil:
		return nil, attrErr
	}
	si, err := s.backend.SnapshotInfo(id)
	if err != nil {
		return nil, backendErr("describe snapshot", err, id)
	}
	if dryRun {
		return nil, errDryRun()
	}
	out := &DescribeSnapshotAttributeResponse{SnapshotID: id}
	switch attr {
	case attrCreateVolumePermission:
		out.CreateVolumePermission = permissionsOf(si)
	case attrProductCodes:
		out.ProductCodes = &ProductCodes{}
	}
	return out, nil
}

// permissionChange is what a ModifySnapshotAttribute request asks: grants
// to add and to remove.
type permissionChange struct {
	add, remove []CreateVolumePermission
}

// readPermissionChange reads CreateVolumePermission.{Add,Remove}.N.{UserId,
// Group}, and OperationType with UserId.N and UserGroup.N (the older form
// the aws CLI's --operation-type, --user-ids and --group-names send).
func readPermissionChange(p *params) (permissionChange, *APIError) {
	var c permissionChange
	var e *APIError
	if c.add, e = readPermissions(p, "CreateVolumePermission.Add"); e != nil {
		return c, e
	}
	if c.remove, e = readPermissions(p, "CreateVolumePermission.Remove"); e != nil {
		return c, e
	}
	op, hasOp := p.get("OperationType")
	users, e := p.stringList("UserId")
	if e != nil {
		return c, e
	}
	groups, e := p.stringList("UserGroup")
	if e != nil {
		return c, e
	}
	var listed []CreateVolumePermission
	for _, u := range users {
		listed = append(listed, CreateVolumePermission{UserID: u})
	}
	for _, g := range groups {
		listed = append(listed, CreateVolumePermission{Group: g})
	}
	switch {
	case hasOp && op == "add":
		c.add = append(c.add, listed...)
	case hasOp && op == "remove":
		c.remove = append(c.remove, listed...)
	case hasOp:
		return c, invalidValue("Value (%s) for parameter OperationType is invalid. Expected add or remove.", clip(op))
	case len(listed) > 0:
		return c, missingParam("OperationType")
	}
	for _, g := range slices.Concat(c.add, c.remove) {
		if e := g.check(); e != nil {
			return c, e
		}
	}
	if len(c.add) == 0 && len(c.remove) == 0 {
		return c, missingParam("CreateVolumePermission")
	}
	return c, nil
}

// readPermissions reads the grants of the list prefix.N.{UserId,Group}.
func readPermissions(p *params, prefix string) ([]CreateVolumePermission, *APIError) {
	idx, e := p.indexes(prefix)
	if e != nil {
		return nil, e
	}
	var out []CreateVolumePermission
	for _, i := range idx {
		m := member(prefix, i)
		user, _ := p.get(m + ".UserId")
		group, _ := p.get(m + ".Group")
		out = append(out, CreateVolumePermission{UserID: user, Group: group})
	}
	return out, nil
}

// check refuses a grant that names neither or both of an account and a
// group, an account ID that is not 12 digits, and a group other than all.
func (g CreateVolumePermission) check() *APIError {
	switch {
	case (g.UserID == "") == (g.Group == ""):
		return invalidValue("A createVolumePermission names either a UserId or a Group (all).")
	case g.Group != "" && g.Group != "all":
		return invalidValue("Value (%s) for parameter Group is invalid. Expected all.", clip(g.Group))
	case g.UserID != "" && !validAccountID(g.UserID):
		return invalidValue("Value (%s) for parameter UserId is invalid. Expected a 12-digit account ID.", clip(g.UserID))
	}
	return nil
}

func validAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	_, err := parseDigits(s)
	return err == nil
}

// modifySnapshotAttribute: SnapshotId, Attribute (createVolumePermission),
// CreateVolumePermission.{Add,Remove}.N, OperationType, UserId.N,
// UserGroup.N, DryRun. The snapshot must exist and be the caller's
// account's.
func (s *Server) modifySnapshotAttribute(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("SnapshotId")
	attr, hasAttr := p.get("Attribute")
	change, changeErr := readPermissionChange(p)
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case id == "":
		return nil, missingParam("SnapshotId")
	case !cow.ValidSnapshotID(id):
		return nil, malformedSnapshotID(id)
	case hasAttr && attr == attrProductCodes:
		return nil, invalidValue("The productCodes attribute of a snapshot cannot be modified: only createVolumePermission can.")
	case hasAttr && attr != attrCreateVolumePermission:
		return nil, invalidValue("Value (%s) for parameter attribute is invalid. Expected createVolumePermission.", clip(attr))
	case changeErr != nil:
		return nil, changeErr
	}
	pb, e := optionalBackend[permissionBackend](s, "snapshot permissions")
	if e != nil {
		return nil, e
	}
	pc := cow.PermissionChange{SnapshotID: id, DryRun: dryRun}
	for _, g := range change.add {
		pc.AddUsers, pc.AddAll = appendUser(pc.AddUsers, g), pc.AddAll || g.Group == cowGroupAll
	}
	for _, g := range change.remove {
		pc.RemoveUsers, pc.RemoveAll = appendUser(pc.RemoveUsers, g), pc.RemoveAll || g.Group == cowGroupAll
	}
	if err := pb.ModifySnapshotPermission(ctx, pc); err != nil {
		return nil, tagError("modify snapshot attribute", &cow.ResourceError{ID: id, Err: err})
	}
	if dryRun {
		return nil, errDryRun()
	}
	return &ModifySnapshotAttributeResponse{Return: true}, nil
}
