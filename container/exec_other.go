//go:build !linux

package container

import "os/exec"

// dieWithParent is Linux-only (Pdeathsig); elsewhere a killed worker's
// children are stopped by the job's container or by the user.
func dieWithParent(cmd *exec.Cmd) {}
