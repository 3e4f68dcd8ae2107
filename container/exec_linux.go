package container

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child if the worker itself is
// killed (SIGKILL after a grace period): the child has its own process
// group, so a signal to the worker's group would not reach it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
