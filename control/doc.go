// Package control owns cowvol's control socket: an HTTP server on a unix
// socket that speaks the Amazon EC2 Query API (Action=CreateVolume&
// Version=2016-11-15, XML answers exactly as EC2 sends them, so AWS SDKs
// work unmodified), and the typed Client the cowvol CLI uses to talk to it.
// Authentication and authorization of callers belong here too: on the unix
// socket by the peer's credentials (SO_PEERCRED) and a Policy, on an
// optional TCP listener by SigV4 signatures over access keys from a
// credentials file (sigv4.go).
//
// The same listeners serve the EBS direct APIs (REST + JSON under
// /snapshots, SigV4 service ebs: ebs.go and its siblings), told apart
// from EC2's requests by their path, and the KMS API (kms.go), told apart
// by its X-Amz-Target header.
//
// The server consumes a small Backend interface, which *cow.Engine
// satisfies; control never touches Badger, the data files or FUSE. Only
// cmd/cowvol imports this package.
//
// Requests are parsed by one strict parser (query.go): flattened, 1-based
// lists such as TagSpecification.1.Tag.2.Key, unknown parameters rejected
// with UnknownParameter, invalid UTF-8 and duplicate keys rejected with
// InvalidParameterValue. Every answer, success or failure, is well-formed
// XML; a panic in a handler becomes a 500 InternalError, never a dropped
// connection.
//
// The Client bounds every wait, as the aws CLI does: connecting (60 s by
// default) and each wait for the daemon's bytes (60 s), so a daemon that
// accepts and never answers fails the call with *TimeoutError instead of
// hanging it (client_conn.go). A connection serves one request.
//
// Where EC2's behaviour was open to choice, this package picks:
//   - missing Action: 400 MissingAction; unknown Action: 400 InvalidAction;
//   - missing Version: 400 MissingParameter; a Version other than
//     2016-11-15: 400 NoSuchVersion (as EC2 answers);
//   - a NextToken that this server did not issue: 400 InvalidPaginationToken;
//     a MaxResults above a Describe call's largest page: pages of the
//     largest, as EC2 (the aws CLI sends 1000);
//   - the daemon is one region with one zone, "<region>a" (zones.go):
//     another region or zone, by name or ID, is 400 InvalidParameterValue
//     naming the valid one;
//   - CreateVolume or CopySnapshot of another account's snapshot that did
//     not grant this one createVolumePermission: 403 UnauthorizedOperation
//     (such snapshots are listed by DescribeSnapshots, as the shared store
//     holds them; EC2 would not show them);
//   - DescribeTags lists the tags of this account's volumes and snapshots;
//   - a body over MaxBodyBytes: 413 RequestEntityTooLarge; a query string
//     that does not parse: 400 MalformedQueryString; a method other than
//     GET or POST: 405 MethodNotAllowed;
//   - ModifyVolume: a request that changes nothing is 400
//     InvalidParameterValue; no 6-hour limit between modifications, only
//     one not completed yet is 400 IncorrectModificationState
//     (modify_volume.go);
//   - AttachVolume: the instance is this host (Host.InstanceID, from
//     /etc/machine-id), the device a loop device (an EC2 device name takes
//     the first free one); without a Host, attachment calls are 400
//     UnsupportedOperation (attach_volume.go);
//   - the data directory's filesystem full: 500 InsufficientVolumeCapacity;
//     the engine shutting down: 503 ServiceUnavailable.
package control
