package attach

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// machineIDFiles hold the host's machine ID (machine-id(5)); the second is
// where older systems keep it.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// InstanceID names this host as an EC2 instance: "i-" and the first 17 hex
// digits of SHA-256("cowvol instance " + machine ID), the machine ID read
// from /etc/machine-id (or /var/lib/dbus/machine-id). It is the same for
// every daemon on the host and across reboots, and reveals nothing of the
// machine ID itself.
func InstanceID() (string, error) {
	for _, path := range machineIDFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if id := strings.TrimSpace(string(b)); id != "" {
			return instanceIDOf(id), nil
		}
	}
	return "", fmt.Errorf("this host has no machine ID (%s): it names the host's instance ID", strings.Join(machineIDFiles, ", "))
}

func instanceIDOf(machineID string) string {
	sum := sha256.Sum256([]byte("cowvol instance " + machineID))
	return "i-" + hex.EncodeToString(sum[:9])[:17]
}
