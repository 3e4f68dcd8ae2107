package pipeline

import "time"

// procIdentity identifies a process beyond its PID: on Linux the boot id,
// the PID namespace and the start time; the zero value (other systems, or
// /proc unreadable) identifies nothing, and then no holder is ever gone.
type procIdentity struct {
	Boot  string // /proc/sys/kernel/random/boot_id
	PIDNS string // readlink /proc/self/ns/pid, e.g. "pid:[4026531836]"
	PID   int
	Start uint64 // field 22 of /proc/<pid>/stat: clock ticks after boot
}

// procSighting is what /proc says about a PID now.
type procSighting struct {
	Exists bool
	Start  uint64
	Dead   bool // a zombie: killed, not yet reaped; it renews nothing
}

// holderGone reports whether a lease's holder process is certainly gone:
// it ran on this boot of this machine in this PID namespace, and its PID
// no longer exists, is dead, or now names a process started at another
// time (the PID was reused). Anything uncertain (a record from another
// machine or container or from an older framefleet, an unreadable /proc)
// says not gone, so a live run is never taken over; its lease then lapses
// as usual.
func holderGone(h *RunHost, self procIdentity, probe func(pid int) (procSighting, error)) bool {
	if h == nil || h.PID <= 0 || h.Start == 0 || h.Boot == "" || h.PIDNS == "" {
		return false
	}
	if self.Boot == "" || self.PIDNS == "" || h.Boot != self.Boot || h.PIDNS != self.PIDNS {
		return false
	}
	seen, err := probe(h.PID)
	if err != nil {
		return false
	}
	return !seen.Exists || seen.Dead || seen.Start != h.Start
}

// holderGone: see the function of that name; this process's identity and /proc.
func (r *Runs) holderGone(h *RunHost) bool {
	r.init()
	return holderGone(h, r.self, probeProcess)
}

// hostAlive reports whether h is a lease that still holds at now: not
// expired, and its holder not certainly gone.
func (r *Runs) hostAlive(h *RunHost, now time.Time) bool {
	return h != nil && now.Before(h.Expires) && !r.holderGone(h)
}
