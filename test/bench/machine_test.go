package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// machineCPU is a snapshot of where this machine's CPU time has gone, so
// that a phase's figures say which part of the machine it ran out of: the
// process under test (the processor, or the peer), the Kafka broker, this
// benchmark process (the event generator and the readers; on kfake, the
// broker as well) and the rest (the kernel's own work, other processes).
type machineCPU struct {
	busy  time.Duration // every CPU, every process and the kernel (/proc/stat)
	total time.Duration // busy and idle
	// measured is the process under test; self is this process; broker is
	// the real broker's process, when its pid is known (BENCH_BROKER_PID,
	// which make bench sets), else 0.
	measured, self, broker time.Duration
}

// sampleMachine takes a snapshot; measured is the process under test's CPU
// time, brokerPID 0 when unknown.
func sampleMachine(measured func() time.Duration, brokerPID int) machineCPU {
	m := machineCPU{measured: measured(), self: pidCPU(os.Getpid())}
	if brokerPID > 0 {
		m.broker = pidCPU(brokerPID)
	}
	m.busy, m.total = hostCPU()
	return m
}

func (m machineCPU) sub(o machineCPU) machineCPU {
	return machineCPU{busy: m.busy - o.busy, total: m.total - o.total,
		measured: m.measured - o.measured, self: m.self - o.self, broker: m.broker - o.broker}
}

// perEvent returns d per event in µs.
func perEvent(d time.Duration, events int64) float64 {
	return float64(d.Microseconds()) / float64(max(events, 1))
}

// kafkaPerEvent is the broker's CPU per event in µs: the real broker's
// process, or on kfake this process (kfake runs in it), or -1 when unknown.
func (m machineCPU) kafkaPerEvent(k *cluster, events int64) float64 {
	switch {
	case k.name == "kfake":
		return perEvent(m.self, events)
	case k.brokerPID > 0:
		return perEvent(m.broker, events)
	}
	return -1
}

// busyShare is the share of all the machine's CPU time that was busy.
func (m machineCPU) busyShare() float64 {
	return float64(m.busy) / float64(max(m.total, 1))
}

// split says where the CPU went over events, per event and as shares of
// the machine's cores.
func (m machineCPU) split(k *cluster, what string, events int64) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "CPU per event: %s %.1f µs", what, perEvent(m.measured, events))
	rest := m.busy - m.measured - m.self
	switch {
	case k.name == "kfake":
		fmt.Fprintf(&sb, ", benchmark process with kfake %.1f µs", perEvent(m.self, events))
	case k.brokerPID > 0:
		fmt.Fprintf(&sb, ", broker %.1f µs, benchmark process %.1f µs", perEvent(m.broker, events), perEvent(m.self, events))
		rest -= m.broker
	default:
		fmt.Fprintf(&sb, ", benchmark process %.1f µs (broker unknown: BENCH_BROKER_PID is not set)", perEvent(m.self, events))
	}
	fmt.Fprintf(&sb, ", the rest of the machine %.1f µs; the machine was %.0f%% busy (all %d cores)",
		perEvent(max(rest, 0), events), 100*m.busyShare(), numCPU())
	return sb.String()
}

// pidCPU returns the user and system CPU time of process pid, 0 if it
// cannot be read.
func pidCPU(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) in ")".
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick
}

// hostCPU returns the machine's busy and total CPU time over all cores
// (the "cpu" line of /proc/stat: user nice system idle iowait irq softirq
// steal ...; guest time is already in user).
func hostCPU() (busy, total time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	idle := v[3] + v[4]
	all := v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]
	return time.Duration(all-idle) * time.Second / clockTick, time.Duration(all) * time.Second / clockTick
}

// brokerPID is the real broker's pid from BENCH_BROKER_PID, 0 if unset.
func brokerPID() int {
	pid, _ := strconv.Atoi(os.Getenv("BENCH_BROKER_PID"))
	return pid
}
