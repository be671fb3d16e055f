package crashenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/wardgate/wardgate/internal/bytesize"
)

// Check is one item of CheckCrashSetup: whether this machine will keep a
// usable core when a Go process dies, and the command that fixes it.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Value  string `json:"value"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// SetupEnv is what CheckCrashSetup inspects; SetupFromSystem fills it from
// this process and machine. Tests and callers can point it elsewhere.
type SetupEnv struct {
	ProcSys     string // usually /proc/sys
	Dir         string // where a relative core_pattern puts cores (the process's cwd)
	GOTRACEBACK string
	// MinFreeBytes is the free space below which the core directory is
	// flagged (a core is about as big as the process's resident memory).
	MinFreeBytes uint64
}

// SetupFromSystem describes the current machine and process, with cores
// expected in dir.
func SetupFromSystem(dir string) SetupEnv {
	return SetupEnv{ProcSys: ProcSys, Dir: dir, GOTRACEBACK: os.Getenv("GOTRACEBACK"), MinFreeBytes: 1 << 30}
}

// CheckCrashSetup checks core_pattern, core_uses_pid, RLIMIT_CORE,
// GOTRACEBACK, Yama's ptrace_scope (for live capture) and free space where
// cores will land.
func CheckCrashSetup(env SetupEnv) []Check {
	var checks []Check
	cp, err := ReadCorePattern(env.ProcSys)
	pattern := cp.Pattern
	coreDir := env.Dir
	switch {
	case err != nil:
		checks = append(checks, Check{Name: "core_pattern", Value: "unreadable", Detail: err.Error(), Fix: "run on Linux with /proc mounted"})
	case cp.Piped():
		c := Check{Name: "core_pattern", Value: pattern, Fix: "sysctl -w kernel.core_pattern=core"}
		switch {
		case strings.Contains(pattern, "systemd-coredump"):
			c.Detail = "cores are piped to systemd-coredump and stored under /var/lib/systemd/coredump (compressed, size-capped by /etc/systemd/coredump.conf); get one with `coredumpctl dump PID -o core`. `wardgate up` cannot see them and writes no post-mortem bundle"
		case strings.Contains(pattern, "apport"):
			c.Detail = "cores are piped to apport, which drops crashes of binaries not installed from a package: cores of wardgate are likely lost"
		default:
			c.Detail = "cores are piped to a helper program; `wardgate up` looks for them in the child's working directory and will not find them"
		}
		checks = append(checks, c)
	default:
		c := Check{Name: "core_pattern", Value: pattern, OK: true}
		if strings.HasPrefix(pattern, "/") {
			coreDir = filepath.Dir(pattern)
			c.Detail = "cores are written to " + coreDir + " (a fixed directory: `wardgate up` looks in the child's working directory; core_pattern=core keeps them there)"
			if !dirWritable(coreDir) {
				c.OK = false
				c.Detail = "cores would go to " + coreDir + ", which does not exist or is not writable"
				c.Fix = "mkdir -p " + coreDir + " && chmod 1777 " + coreDir + "   # or: sysctl -w kernel.core_pattern=core"
			}
		} else {
			c.Detail = "cores are written to the crashing process's working directory as " + pattern + " (for `wardgate up` children: their directory under the data dir)"
		}
		checks = append(checks, c)
	}

	if v, err := readTrim(filepath.Join(env.ProcSys, "kernel/core_uses_pid")); err == nil {
		d := "cores are named exactly as the pattern says; a second crash overwrites the first unless the pattern has %p"
		if v == "1" {
			d = "the pid is appended (core.PID) when the pattern has no %p"
		}
		checks = append(checks, Check{Name: "core_uses_pid", Value: v, OK: true, Detail: d})
	}

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		checks = append(checks, Check{Name: "RLIMIT_CORE", Value: "unknown", Detail: err.Error()})
	} else {
		c := Check{Name: "RLIMIT_CORE", Value: "soft " + rlim(lim.Cur) + ", hard " + rlim(lim.Max)}
		up := "`wardgate up` raises its children's soft limit to unlimited (or to the hard limit when it may not go higher)"
		switch {
		case lim.Cur == 0 && lim.Max == 0:
			c.Detail = "core dumps are disabled and only root can raise the hard limit; " + up
			c.Fix = "ulimit -c unlimited   # as root, or LimitCORE=infinity in the systemd unit"
		case lim.Cur == 0:
			c.Detail = "core dumps are disabled in this shell; " + up
			c.Fix = "ulimit -c unlimited"
		case lim.Cur != RlimInfinity:
			c.Detail = "cores larger than " + rlim(lim.Cur) + " are truncated (useless to delve); " + up
			c.Fix = "ulimit -c unlimited"
		default:
			c.OK = true
			c.Detail = "processes started from here may write cores of any size; " + up
		}
		checks = append(checks, c)
	}

	tb := env.GOTRACEBACK
	c := Check{Name: "GOTRACEBACK", Value: tb}
	switch strings.ToLower(tb) {
	case "crash":
		c.OK = true
		c.Detail = "a fatal error prints every goroutine and then aborts with SIGABRT, which writes a core"
	case "":
		c.Value = "(unset: single)"
		c.Detail = "a Go process exits with status 2 on a fatal error and writes no core; `wardgate up` sets GOTRACEBACK=crash for its children"
		c.Fix = "export GOTRACEBACK=crash"
	default:
		c.Detail = "GOTRACEBACK=" + tb + " writes no core on a fatal error; `wardgate up` sets GOTRACEBACK=crash for its children"
		c.Fix = "export GOTRACEBACK=crash"
	}
	checks = append(checks, c)

	ps, err := readTrim(filepath.Join(env.ProcSys, "kernel/yama/ptrace_scope"))
	switch {
	case err != nil:
		checks = append(checks, Check{Name: "ptrace_scope", Value: "(no Yama LSM)", OK: true, Detail: "ptrace is governed by plain Unix permissions: live capture (gcore, wardgate diag capture) works for the same user or root"})
	case ps == "0":
		checks = append(checks, Check{Name: "ptrace_scope", Value: ps, OK: true, Detail: "live capture may attach to any process of the same user"})
	case ps == "1" && os.Geteuid() == 0:
		checks = append(checks, Check{Name: "ptrace_scope", Value: ps, OK: true, Detail: "restricted to descendants, but this user is root (CAP_SYS_PTRACE): live capture works"})
	default:
		checks = append(checks, Check{Name: "ptrace_scope", Value: ps, Detail: "live capture (gcore, wardgate diag capture) cannot attach to a process that is not its descendant (1), needs CAP_SYS_PTRACE (2), or is impossible until reboot (3)", Fix: "sysctl -w kernel.yama.ptrace_scope=0   # or run the capture as root"})
	}

	var st syscall.Statfs_t
	if err := syscall.Statfs(coreDir, &st); err != nil {
		checks = append(checks, Check{Name: "free space", Value: "unknown", Detail: coreDir + ": " + err.Error(), Fix: "mkdir -p " + coreDir})
	} else {
		free := st.Bavail * uint64(st.Bsize)
		c := Check{Name: "free space", Value: fmt.Sprintf("%s free in %s", bytesize.Format(free), coreDir), OK: free >= env.MinFreeBytes}
		c.Detail = "a core is about the size of the process's resident memory"
		if !c.OK {
			c.Detail += "; less than " + bytesize.Format(env.MinFreeBytes) + " left"
			c.Fix = "free space in " + coreDir + " or point core_pattern at a larger disk: sysctl -w kernel.core_pattern=/var/crash/core.%e.%p"
		}
		checks = append(checks, c)
	}
	return checks
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func dirWritable(dir string) bool {
	return syscall.Access(dir, 2 /* W_OK */) == nil
}

func rlim(v uint64) string {
	switch v {
	case RlimInfinity:
		return "unlimited"
	case 0:
		return "0"
	}
	return bytesize.Format(v)
}
