package analyze

import (
	"fmt"

	"github.com/go-delve/delve/pkg/goversion"
	"github.com/go-delve/delve/pkg/proc"
	"github.com/go-delve/delve/pkg/proc/core"

	"github.com/wardgate/wardgate/diag/findings"
)

// Open: the core is opened with delve, and the goroutines running on a
// thread are noted. It is a phase of its own because everything after it
// works on the analysis it returns, which holds the one delve target, the
// memory-mapped core and the caches the later phases share.

// stackDepth is how many frames are unwound per goroutine.
const stackDepth = 64

// analysis is one open core: delve's target, the core mapped into memory,
// and the caches the phases share.
type analysis struct {
	grp   *proc.TargetGroup
	t     *proc.Target
	bi    *proc.BinaryInfo
	mem   *coreMemory
	src   *sourceCache
	gover goversion.GoVersion
	// threadG are the goroutines running on a thread, by ID (delve's
	// view, with the thread's registers); delveGs caches delve's view of
	// others by allgs index.
	threadG map[int64]*proc.G
	delveGs map[int]*proc.G
	funcs   map[uint64]string // function name by entry-relative PC lookups
	cls     *findings.Classifier
}

// open opens the core with delve and records, from it, the Go version
// when the executable's build info had none.
func open(opts Options, r *Report) (*analysis, error) {
	grp, err := core.OpenCore(opts.Core, opts.Exe, nil)
	if err != nil {
		return nil, fmt.Errorf("analyze: open core %s with %s: %w", opts.Core, opts.Exe, err)
	}
	t := grp.Selected
	a := &analysis{
		grp:     grp,
		t:       t,
		bi:      t.BinInfo(),
		mem:     newCoreMemory(opts.Core, t.Memory()),
		src:     newSourceCache(),
		gover:   goversion.ParseProducer(t.BinInfo().Producer()),
		threadG: map[int64]*proc.G{},
		delveGs: map[int]*proc.G{},
		funcs:   map[uint64]string{},
		cls:     findings.NewClassifier(r.Build.MainModule, opts.App),
	}
	if r.Build.GoVersion == "" {
		r.Build.GoVersion = t.BinInfo().Producer()
	}
	for _, th := range t.ThreadList() {
		if g, err := proc.GetG(th); err == nil && g != nil && g.ID != 0 {
			a.threadG[g.ID] = g
		}
	}
	return a, nil
}

// close unmaps the core and lets delve go of it.
func (a *analysis) close() {
	a.mem.close()
	a.grp.Detach(false)
}
