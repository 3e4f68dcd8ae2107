package pipeline

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// thisProcess reads this process's identity from /proc; the zero value when
// /proc does not answer for this process's PID namespace.
func thisProcess() procIdentity {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return procIdentity{}
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return procIdentity{}
	}
	pid := os.Getpid()
	// /proc must be the one of our PID namespace, or the PIDs it shows are
	// not the ones recorded.
	statPID, _, start, err := readStat("/proc/self/stat")
	if err != nil || statPID != pid {
		return procIdentity{}
	}
	return procIdentity{Boot: strings.TrimSpace(string(boot)), PIDNS: ns, PID: pid, Start: start}
}

// probeProcess says whether pid exists now, when it started, and whether it
// is a zombie.
func probeProcess(pid int) (procSighting, error) {
	_, state, start, err := readStat("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return procSighting{}, nil
	}
	if err != nil {
		return procSighting{}, err
	}
	return procSighting{Exists: true, Start: start, Dead: state == 'Z' || state == 'X'}, nil
}

// readStat parses a /proc/<pid>/stat file: the PID (field 1), the state
// (field 3) and the start time (field 22). The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so the fields
// after it are counted from the last ')'.
func readStat(path string) (pid int, state byte, start uint64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 1 || end < open {
		return 0, 0, 0, errors.New(path + ": unexpected format")
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return 0, 0, 0, errors.New(path + ": unexpected format")
	}
	rest := strings.Fields(s[end+1:]) // rest[0] is field 3
	if len(rest) < 20 || len(rest[0]) != 1 {
		return 0, 0, 0, errors.New(path + ": unexpected format")
	}
	if start, err = strconv.ParseUint(rest[19], 10, 64); err != nil {
		return 0, 0, 0, errors.New(path + ": unexpected format")
	}
	return pid, rest[0][0], start, nil
}
