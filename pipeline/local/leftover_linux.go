package local

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// leftoverWorkers lists the PIDs of workers of run runID that no engine of
// this process started: those of a framefleet that was killed. They got
// SIGTERM when it died (dieWithParent) and may still be storing the frames
// they finished and their chunk reports. Processes of other users, whose
// environment cannot be read, are not framefleet's workers for this run.
func leftoverWorkers(runID string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(runIDVar + "=" + runID + "\x00")
	self := os.Getpid()
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		if parentOf(pid) == self {
			continue // this process's own worker
		}
		pids = append(pids, pid)
	}
	return pids
}

// parentOf reads a process's parent PID (field 4 of /proc/<pid>/stat); 0 if unknown.
func parentOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(s[end+1:]) // fields[0] is field 3
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}
