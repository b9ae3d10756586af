// Command cowvol is the cowvol daemon and its command-line client.
//
// `cowvol daemon` serves volumes; every other verb is a client of the
// daemon's control socket and mirrors `aws ec2`.
package main

import "os"

func main() {
	// Exit codes come from cli.ExitCoder errors (see app.go).
	_ = newApp(os.Stdout, os.Stderr).Run(os.Args)
}
