package analyze

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-delve/delve/pkg/proc"
	"github.com/go-delve/delve/service/api"
)

// Discover: every goroutine of the core, read from runtime.allgs directly
// (gread.go) or, when the runtime's layout is unknown, through delve's
// slower bounded listing (bounds.go). It is a phase of its own because the
// later ones only see the gInfo list it returns, whichever way it was read.

// discover lists the core's goroutines.
func (a *analysis) discover(ctx context.Context, r *Report) ([]gInfo, error) {
	gs, err := a.readGoroutines()
	if err != nil {
		// Unknown runtime layout: let delve list them (slower).
		r.Warnings = append(r.Warnings, fmt.Sprintf("reading goroutines directly: %v; used delve's slower listing", err))
		if gs, err = a.goroutinesFromDelve(ctx); err != nil {
			return nil, fmt.Errorf("analyze: list goroutines: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return gs, nil
}

// goroutinesFromDelve lists goroutines through delve when the runtime.g
// layout could not be read.
func (a *analysis) goroutinesFromDelve(ctx context.Context) ([]gInfo, error) {
	dgs, err := a.delveGoroutinesBounded(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]gInfo, 0, len(dgs))
	for i, g := range dgs {
		if g.Unreadable != nil {
			continue
		}
		a.delveGs[i] = g
		out = append(out, gInfo{
			idx: i, id: g.ID, status: g.Status, waitReason: uint8(g.WaitReason), waitSince: g.WaitSince,
			pc: g.PC, sp: g.SP, bp: g.BP, goPC: g.GoPC, startPC: g.StartPC,
		})
	}
	return out, nil
}

func (a *analysis) state(g *gInfo) (state, reason string) {
	switch g.status {
	case proc.Grunnable:
		return "runnable", ""
	case proc.Grunning:
		return "running", ""
	case proc.Gsyscall:
		return "syscall", ""
	case proc.Gwaiting:
		return "waiting", api.WaitReasonString(&a.gover, int64(g.waitReason))
	case proc.Gidle:
		return "idle", ""
	case proc.Gcopystack:
		return "copystack", ""
	case 9:
		return "preempted", ""
	case 10:
		return "leaked", ""
	}
	return "status " + strconv.FormatUint(g.status, 10), ""
}

// funcName is the name of the function containing pc ("" if unknown).
func (a *analysis) funcName(pc uint64) string {
	if n, ok := a.funcs[pc]; ok {
		return n
	}
	n := ""
	if fn := a.bi.PCToFunc(pc); fn != nil {
		n = fn.Name
	}
	a.funcs[pc] = n
	return n
}
