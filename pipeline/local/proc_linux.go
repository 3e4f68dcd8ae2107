package local

import "syscall"

// dieWithParent makes the kernel send the worker SIGTERM when framefleet
// itself dies (kill -9, a closed terminal after SIGHUP's default action):
// the worker runs in a process group of its own, so nothing else reaches it.
// SIGTERM, not SIGKILL, so the worker stops its Blender (which it started
// with Pdeathsig too) and stores what it finished.
//
// Pdeathsig fires when the OS thread that forked the child exits, not the
// process; runAttempt keeps its goroutine locked to that thread from Start
// to Wait so the Go runtime cannot retire the thread under a live worker.
func dieWithParent(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGTERM
}
