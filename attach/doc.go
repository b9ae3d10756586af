// Package attach is cowvol's host side of EC2's AttachVolume: it attaches
// volume files (under the daemon's FUSE mount) to loop devices with direct
// I/O, detaches them, refreshes a loop device's capacity after a volume
// grew, and finds the loop devices set up by hand on a volume's file. It
// names this host as an EC2 instance (InstanceID). The engine keeps the
// records of the attachments it makes (cow.RecordAttachment); Host
// restores them at start.
package attach
