package analyze

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"

	"github.com/go-delve/delve/pkg/proc"
)

// Runtime goroutine status values (runtime/runtime2.go); the _Gscan bit
// (0x1000) is masked off first.
const (
	gStatusDead      = 6
	gStatusDeadExtra = 11 // a dead g parked on an extra M for cgo callbacks
	gStatusScanBit   = 0x1000
)

// gInfo is what the report needs of one goroutine, decoded straight from
// its runtime.g struct.
//
// Why not proc.GoroutinesInfo: delve builds a proc.Variable tree per g and
// loads each field through its generic evaluator, and G.Labels does the
// same for the label map. With 100k goroutines that was ~2.1 s of the
// ~2.5 s CPU an analysis took. The g struct is instead read with one
// memory copy and its fields decoded at offsets taken from the binary's
// DWARF once (through delve's evaluator on the first g), so the layout is
// still the binary's own, not hard-coded.
type gInfo struct {
	idx        int // index in runtime.allgs (for proc.GoroutinesInfo(t, idx, 1))
	addr       uint64
	id         int64
	status     uint64
	waitReason uint8
	waitSince  int64
	pc, sp, bp uint64
	goPC       uint64
	startPC    uint64
	labels     uint64 // *pprof.labelMap, 0 when none
}

// gLayout holds the offsets of the runtime.g fields gInfo needs.
type gLayout struct {
	size                                 int64
	goid, status, waitReason, waitSince  int64
	pc, sp, bp, goPC, startPC, labelsOff int64
	statusSize                           int64
}

// readGoroutines lists every live goroutine from runtime.allgs.
func (a *analysis) readGoroutines() ([]gInfo, error) {
	scope, err := proc.ConvertEvalScope(a.t, -1, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("eval scope: %w", err)
	}
	allgs, err := scope.EvalExpression("runtime.allgs", proc.LoadConfig{})
	if err != nil {
		return nil, fmt.Errorf("runtime.allgs: %w", err)
	}
	var hdr [16]byte
	if err := a.mem.read(hdr[:], allgs.Addr); err != nil {
		return nil, fmt.Errorf("runtime.allgs: %w", err)
	}
	base, n := binary.LittleEndian.Uint64(hdr[0:]), binary.LittleEndian.Uint64(hdr[8:])
	if n == 0 || n > maxGoroutines || !a.mem.fits(n*8) {
		return nil, fmt.Errorf("runtime.allgs: implausible length %d", n)
	}
	ptrs := make([]byte, n*8)
	if err := a.mem.read(ptrs, base); err != nil {
		return nil, fmt.Errorf("runtime.allgs array: %w", err)
	}
	first := binary.LittleEndian.Uint64(ptrs)
	lay, err := a.gLayout(scope, first)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, lay.size)
	out := make([]gInfo, 0, n)
	for i := range int(n) {
		addr := binary.LittleEndian.Uint64(ptrs[i*8:])
		if addr == 0 || a.mem.read(buf, addr) != nil {
			continue
		}
		u64 := func(off int64) uint64 { return binary.LittleEndian.Uint64(buf[off:]) }
		var status uint64
		if lay.statusSize == 4 {
			status = uint64(binary.LittleEndian.Uint32(buf[lay.status:]))
		} else {
			status = u64(lay.status)
		}
		status &^= gStatusScanBit
		if status == gStatusDead || status == gStatusDeadExtra {
			continue
		}
		out = append(out, gInfo{
			idx: i, addr: addr, id: int64(u64(lay.goid)), status: status,
			waitReason: buf[lay.waitReason], waitSince: int64(u64(lay.waitSince)),
			pc: u64(lay.pc), sp: u64(lay.sp), bp: u64(lay.bp),
			goPC: u64(lay.goPC), startPC: u64(lay.startPC), labels: u64(lay.labelsOff),
		})
	}
	return out, nil
}

// gLayout reads the offsets of runtime.g's fields from DWARF, by letting
// delve evaluate the g at addr and comparing field addresses.
func (a *analysis) gLayout(scope *proc.EvalScope, addr uint64) (gLayout, error) {
	v, err := scope.EvalExpression(fmt.Sprintf("*(*runtime.g)(%#x)", addr), proc.LoadConfig{MaxVariableRecurse: 1, MaxStructFields: -1})
	if err != nil {
		return gLayout{}, fmt.Errorf("runtime.g layout: %w", err)
	}
	lay := gLayout{size: v.RealType.Size()}
	field := func(v *proc.Variable, name string) *proc.Variable {
		for i := range v.Children {
			if v.Children[i].Name == name {
				return &v.Children[i]
			}
		}
		return nil
	}
	var missing []string
	off := func(path ...string) (int64, int64) {
		cur := v
		for _, p := range path {
			if cur = field(cur, p); cur == nil {
				missing = append(missing, strings.Join(path, "."))
				return 0, 0
			}
		}
		if cur.Kind == reflect.Struct && len(cur.Children) > 0 { // atomic.Uint32{_ noCopy; v uint32}
			if inner := field(cur, "v"); inner != nil {
				cur = inner
			}
		}
		return int64(cur.Addr - addr), cur.RealType.Size()
	}
	lay.goid, _ = off("goid")
	lay.status, lay.statusSize = off("atomicstatus")
	lay.waitReason, _ = off("waitreason")
	lay.waitSince, _ = off("waitsince")
	lay.pc, _ = off("sched", "pc")
	lay.sp, _ = off("sched", "sp")
	lay.bp, _ = off("sched", "bp")
	lay.goPC, _ = off("gopc")
	lay.startPC, _ = off("startpc")
	lay.labelsOff, _ = off("labels")
	if len(missing) > 0 {
		return gLayout{}, fmt.Errorf("runtime.g of this Go release has no %s", strings.Join(missing, ", "))
	}
	if lay.statusSize != 4 && lay.statusSize != 8 {
		return gLayout{}, fmt.Errorf("runtime.g.atomicstatus has size %d", lay.statusSize)
	}
	return lay, nil
}

// labelReader reads pprof label maps straight from memory, cached by
// address: goroutines started under pprof.Do share their parent's map.
//
// The layout read is Go 1.21+'s labelMap{Set{list []Label{Key, Value}}};
// it is checked once against delve's own G.Labels, and if the two disagree
// (another Go release) every goroutine's labels come from delve instead.
type labelReader struct {
	a       *analysis
	cache   map[uint64]map[string]string
	checked bool
	slow    bool
}

func newLabelReader(a *analysis) *labelReader {
	return &labelReader{a: a, cache: map[uint64]map[string]string{}}
}

// labels returns the goroutine's labels (shared: do not modify).
func (lr *labelReader) labels(g *gInfo) map[string]string {
	if g.labels == 0 {
		return nil
	}
	if l, ok := lr.cache[g.labels]; ok && !lr.slow {
		return l
	}
	if !lr.checked {
		lr.checked = true
		direct, err := lr.direct(g.labels)
		if dg, derr := lr.a.delveG(g); derr == nil {
			if err != nil || !maps.Equal(direct, dg.Labels()) {
				lr.slow = true
			}
		}
	}
	if lr.slow {
		dg, err := lr.a.delveG(g)
		if err != nil {
			return nil
		}
		return dg.Labels()
	}
	l, err := lr.direct(g.labels)
	if err != nil {
		l = nil
	}
	lr.cache[g.labels] = l
	return l
}

// maxLabels bounds a label list read from memory (delve uses the same cap).
const maxLabels = 64

func (lr *labelReader) direct(addr uint64) (map[string]string, error) {
	mem := lr.a.mem
	var hdr [16]byte
	if err := mem.read(hdr[:], addr); err != nil {
		return nil, err
	}
	list, n := binary.LittleEndian.Uint64(hdr[0:]), binary.LittleEndian.Uint64(hdr[8:])
	if n > maxLabels {
		return nil, errors.New("implausible label count")
	}
	out := make(map[string]string, n)
	ent := make([]byte, 32*n)
	if err := mem.read(ent, list); err != nil {
		return nil, err
	}
	str := func(b []byte) (string, error) {
		p, l := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		if l > 1<<16 {
			return "", errors.New("implausible label length")
		}
		s := make([]byte, l)
		if err := mem.read(s, p); err != nil {
			return "", err
		}
		return string(s), nil
	}
	for i := range int(n) {
		k, err := str(ent[i*32:])
		if err != nil {
			return nil, err
		}
		v, err := str(ent[i*32+16:])
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// delveG returns delve's view of a goroutine (for stack unwinding and
// symbolic work), the thread's own when it runs on one.
func (a *analysis) delveG(g *gInfo) (*proc.G, error) {
	if dg := a.threadG[g.id]; dg != nil {
		return dg, nil
	}
	if dg := a.delveGs[g.idx]; dg != nil {
		return dg, nil
	}
	gs, _, err := proc.GoroutinesInfo(a.t, g.idx, 1)
	if err != nil {
		return nil, err
	}
	if len(gs) == 0 || gs[0].ID != g.id {
		return nil, fmt.Errorf("goroutine %d not found by delve", g.id)
	}
	if gs[0].Unreadable != nil {
		return nil, gs[0].Unreadable
	}
	a.delveGs[g.idx] = gs[0]
	return gs[0], nil
}
