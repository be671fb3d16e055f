package analyze

import (
	"encoding/binary"
	"strings"

	"github.com/go-delve/delve/pkg/proc"
)

// A thread that a capture stops while the kernel delivers a signal to it
// (the runtime's async-preemption SIGURG, a profiling SIGPROF) is at the
// first instructions of runtime.sigtramp, on the signal stack, before
// sigtrampgo: delve v1.27.2 unwinds through runtime.sigtrampgo's context
// argument but not from there (on Go 1.26 it looks for runtime.sigreturn,
// now runtime.sigreturn__sigaction), and the goroutine it interrupted shows
// as sigtramp over garbage frames. Often it is the busiest goroutine of the
// process. The interrupted registers are in the frame the kernel pushed
// (x86-64 rt_sigframe: the restorer's address, then the ucontext), so
// sigtrampFrames reads them and follows the frame pointers from there, as
// fpChain does for parked goroutines.

// Offsets in the x86-64 ucontext: uc_flags, uc_link and the 24-byte
// stack_t precede the mcontext, whose general registers start with r8.
const (
	ucMcontext = 8 + 8 + 24
	mcRBP      = ucMcontext + 10*8
	mcRSP      = ucMcontext + 15*8
	mcRIP      = ucMcontext + 16*8
)

// sigtrampFrames returns frames for g when delve's unwind stopped in
// runtime.sigtramp: the sigtramp frame, then the interrupted function and
// its callers by frame pointer. It returns nil when g is not in that state
// or the signal frame does not look right.
func (a *analysis) sigtrampFrames(g *proc.G, frames []proc.Stackframe) []proc.Stackframe {
	if a.bi.Arch.Name != "amd64" || g.Thread == nil || len(frames) == 0 ||
		frames[0].Current.Fn == nil || frames[0].Current.Fn.Name != "runtime.sigtramp" {
		return nil
	}
	regs, err := g.Thread.Registers()
	if err != nil {
		return nil
	}
	ctx, ok := a.ucontextAddr(regs, frames[0].Current.Fn.Entry)
	if !ok {
		return nil
	}
	var mc [mcRIP + 8 - mcRBP]byte
	if err := a.mem.read(mc[:], ctx+mcRBP); err != nil {
		return nil
	}
	rbp := binary.LittleEndian.Uint64(mc[0:])
	rsp := binary.LittleEndian.Uint64(mc[mcRSP-mcRBP:])
	rip := binary.LittleEndian.Uint64(mc[mcRIP-mcRBP:])
	fn := a.bi.PCToFunc(rip)
	if fn == nil || rsp == 0 {
		return nil
	}
	out := []proc.Stackframe{frames[0], a.frameAt(rip, false)}
	// Follow the frame pointers of the interrupted goroutine's stack. At
	// the first instructions of a function, before it saved BP, the chain
	// starts at its caller's frame and skips that caller: a frame
	// pointer walk's usual limit.
	fp := rbp
	var buf [16]byte
	for depth := 0; fp != 0 && depth < stackDepth; depth++ {
		if fp < rsp || fp-rsp > 1<<30 || a.mem.read(buf[:], fp) != nil {
			break
		}
		next := binary.LittleEndian.Uint64(buf[0:])
		ret := binary.LittleEndian.Uint64(buf[8:])
		if ret == 0 || a.bi.PCToFunc(ret) == nil {
			break
		}
		out = append(out, a.frameAt(ret, true))
		if next != 0 && next <= fp {
			break
		}
		fp = next
	}
	return out
}

// ucontextAddr finds the ucontext the kernel passed to the handler: at the
// handler's entry it sits right above the return address the kernel pushed
// (the runtime's restorer, runtime.sigreturn__sigaction); later in sigtramp,
// before the call to sigtrampgo, it is still in RDX (the third argument).
func (a *analysis) ucontextAddr(regs proc.Registers, entry uint64) (uint64, bool) {
	if regs.PC() == entry {
		var ret [8]byte
		if a.mem.read(ret[:], regs.SP()) != nil {
			return 0, false
		}
		fn := a.bi.PCToFunc(binary.LittleEndian.Uint64(ret[:]))
		if fn == nil || !strings.HasPrefix(fn.Name, "runtime.sigreturn") {
			return 0, false
		}
		return regs.SP() + 8, true
	}
	all, err := regs.Slice(false)
	if err != nil {
		return 0, false
	}
	for _, r := range all {
		if r.Name == "Rdx" && r.Reg != nil {
			return r.Reg.Uint64Val, r.Reg.Uint64Val != 0
		}
	}
	return 0, false
}

// frameAt is a one-location frame for pc; a return address is looked up
// at the call instruction before it.
func (a *analysis) frameAt(pc uint64, isReturn bool) proc.Stackframe {
	look := pc
	if isReturn {
		look--
	}
	file, line, fn := a.bi.PCToLine(look)
	loc := proc.Location{PC: pc, File: file, Line: line, Fn: fn}
	return proc.Stackframe{Current: loc, Call: loc}
}
