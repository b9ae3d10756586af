package integration

import (
	"strings"
	"testing"
)

// The AWS CLI itself, over --listen, grows a volume, reads its
// modification, attaches and detaches it with its waiters, and gets EC2's
// codes for bad input.
func TestAWSCLIModifyAndAttach(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)
	instance := hostInstanceID(t)

	var vol struct{ VolumeId string }
	a.mustJSON(t, &vol, "ec2", "create-volume", "--size", "1", "--availability-zone", "us-east-1a")

	step(t, "aws ec2 modify-volume and describe-volumes-modifications", func(t *testing.T) {
		a.mustFail(t, "DryRunOperation", "ec2", "modify-volume", "--volume-id", vol.VolumeId, "--size", "3", "--dry-run")
		var out struct {
			VolumeModification struct {
				ModificationState        string
				OriginalSize, TargetSize int
			}
		}
		a.mustJSON(t, &out, "ec2", "modify-volume", "--volume-id", vol.VolumeId, "--size", "3")
		if m := out.VolumeModification; m.ModificationState != "modifying" || m.OriginalSize != 1 || m.TargetSize != 3 {
			t.Errorf("modify-volume: %+v", m)
		}
		a.mustFail(t, "InvalidParameterValue", "ec2", "modify-volume", "--volume-id", vol.VolumeId, "--size", "2")
		a.mustFail(t, "InvalidParameterCombination", "ec2", "modify-volume", "--volume-id", vol.VolumeId, "--size", "4", "--iops", "3000")
		var mods struct {
			VolumesModifications []struct {
				VolumeId, ModificationState string
				Progress                    int
				EndTime                     string
			}
		}
		a.mustJSON(t, &mods, "ec2", "describe-volumes-modifications")
		if len(mods.VolumesModifications) != 1 || mods.VolumesModifications[0].ModificationState != "completed" ||
			mods.VolumesModifications[0].Progress != 100 || mods.VolumesModifications[0].EndTime == "" {
			t.Errorf("describe-volumes-modifications: %+v", mods)
		}
		a.mustJSON(t, &mods, "ec2", "describe-volumes-modifications", "--filters", "Name=modification-state,Values=optimizing")
		if len(mods.VolumesModifications) != 0 {
			t.Errorf("modification-state=optimizing: %+v", mods)
		}
		var vols struct{ Volumes []struct{ Size int } }
		a.mustJSON(t, &vols, "ec2", "describe-volumes", "--volume-ids", vol.VolumeId)
		if len(vols.Volumes) != 1 || vols.Volumes[0].Size != 3 {
			t.Errorf("describe-volumes after the grow: %+v", vols)
		}
	})

	step(t, "aws ec2 attach-volume, wait volume-in-use, detach-volume, wait volume-available", func(t *testing.T) {
		a.mustFail(t, "InvalidInstanceID.NotFound", "ec2", "attach-volume", "--volume-id", vol.VolumeId,
			"--instance-id", "i-0123456789abcdef0", "--device", "/dev/sdf")
		a.mustFail(t, "IncorrectState", "ec2", "detach-volume", "--volume-id", vol.VolumeId)
		var att struct{ Device, State, InstanceId string }
		a.mustJSON(t, &att, "ec2", "attach-volume", "--volume-id", vol.VolumeId, "--instance-id", instance, "--device", "/dev/sdf")
		if !strings.HasPrefix(att.Device, "/dev/loop") || att.State != "attaching" || att.InstanceId != instance {
			t.Fatalf("attach-volume: %+v", att)
		}
		detachInCleanup(t, att.Device, d.volumePath(vol.VolumeId))
		a.mustJSON(t, nil, "ec2", "wait", "volume-in-use", "--volume-ids", vol.VolumeId)
		var vols struct {
			Volumes []struct {
				State       string
				Attachments []struct{ Device, InstanceId, State string }
			}
		}
		a.mustJSON(t, &vols, "ec2", "describe-volumes", "--volume-ids", vol.VolumeId)
		if v := vols.Volumes[0]; v.State != "in-use" || len(v.Attachments) != 1 || v.Attachments[0].Device != att.Device ||
			v.Attachments[0].InstanceId != instance || v.Attachments[0].State != "attached" {
			t.Errorf("describe-volumes: %+v", v)
		}
		a.mustFail(t, "VolumeInUse", "ec2", "attach-volume", "--volume-id", vol.VolumeId, "--instance-id", instance, "--device", "/dev/sdg")
		a.mustFail(t, "DryRunOperation", "ec2", "detach-volume", "--volume-id", vol.VolumeId, "--dry-run")
		a.mustJSON(t, &att, "ec2", "detach-volume", "--volume-id", vol.VolumeId, "--instance-id", instance)
		if att.State != "detaching" {
			t.Errorf("detach-volume: %+v", att)
		}
		a.mustJSON(t, nil, "ec2", "wait", "volume-available", "--volume-ids", vol.VolumeId)
	})
}
