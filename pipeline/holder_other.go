//go:build !linux

package pipeline

import "errors"

// thisProcess: without /proc there is no identity beyond the PID, so no
// holder is ever known to be gone; leases lapse after their TTL.
func thisProcess() procIdentity { return procIdentity{} }

func probeProcess(int) (procSighting, error) {
	return procSighting{}, errors.New("process start times are read on Linux only")
}
