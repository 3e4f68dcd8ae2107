//go:build !linux

package local

import "syscall"

// dieWithParent is Linux-only (Pdeathsig); elsewhere workers of a killed
// framefleet run to their end.
func dieWithParent(attr *syscall.SysProcAttr) {}
