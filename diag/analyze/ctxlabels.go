package analyze

import (
	"go/constant"
	"reflect"
	"strings"

	"github.com/go-delve/delve/pkg/proc"
)

// ctxLoad loads a context.Context deep enough to follow a chain of a dozen
// wrapped contexts (each layer is an interface, a pointer and a struct).
var ctxLoad = proc.LoadConfig{FollowPointers: true, MaxVariableRecurse: 40, MaxStringLen: 256, MaxArrayValues: 64, MaxStructFields: -1}

// contextLabels finds the pprof labels carried by the context.Context
// arguments and locals of the given frames.
//
// A goroutine that panics inside pprof.Do loses its labels before the core
// is written: the unrecovered panic runs pprof.Do's deferred
// SetGoroutineLabels(parent) while unwinding, so g.labels is already the
// parent's (usually none) when the runtime aborts. The labels still live in
// the ctx that pprof.Do passed down (a valueCtx keyed by
// runtime/pprof.labelContextKey), so they are read from there.
func (a *analysis) contextLabels(g *proc.G, frames []proc.Stackframe, tid int) map[string]string {
	for i := range frames {
		if frames[i].Call.Fn == nil || strings.HasPrefix(frames[i].Call.Fn.Name, "runtime.") {
			continue
		}
		scope := proc.FrameToScope(a.t, a.t.Memory(), g, tid, frames[i:]...)
		vars, err := scope.FunctionArguments(proc.LoadConfig{})
		if err != nil {
			continue
		}
		if locals, err := scope.LocalVariables(proc.LoadConfig{}); err == nil {
			vars = append(vars, locals...)
		}
		for _, v := range vars {
			if v.DwarfType == nil || v.DwarfType.String() != "context.Context" {
				continue
			}
			lv, err := scope.EvalExpression(v.Name, ctxLoad)
			if err != nil {
				continue
			}
			if labels := labelsInContext(lv, 0); len(labels) > 0 {
				return labels
			}
		}
	}
	return nil
}

// labelsInContext walks a loaded context value: interfaces and pointers
// down to structs; a struct with key of type pprof.labelContextKey holds
// the label set in val, any other struct is followed through its embedded
// parent Context.
func labelsInContext(v *proc.Variable, depth int) map[string]string {
	if v == nil || depth > 64 {
		return nil
	}
	switch v.Kind {
	case reflect.Interface, reflect.Ptr:
		if len(v.Children) == 1 {
			return labelsInContext(&v.Children[0], depth+1)
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	var key, val, parent *proc.Variable
	for i := range v.Children {
		c := &v.Children[i]
		switch c.Name {
		case "key":
			key = c
		case "val":
			val = c
		case "Context":
			parent = c
		}
	}
	if key != nil && val != nil && len(key.Children) == 1 && strings.HasSuffix(key.Children[0].TypeString(), "pprof.labelContextKey") {
		if labels := labelList(val, 0); len(labels) > 0 {
			return labels
		}
	}
	if parent != nil {
		return labelsInContext(parent, depth+1)
	}
	return nil
}

// labelList reads a *labelMap (struct{Set{List []Label{Key, Value}}}, or
// the LabelSet{list []label{key, value}} of older releases).
func labelList(v *proc.Variable, depth int) map[string]string {
	if v == nil || depth > 8 {
		return nil
	}
	switch v.Kind {
	case reflect.Interface, reflect.Ptr:
		if len(v.Children) == 1 {
			return labelList(&v.Children[0], depth+1)
		}
	case reflect.Struct:
		for i := range v.Children {
			if l := labelList(&v.Children[i], depth+1); len(l) > 0 {
				return l
			}
		}
	case reflect.Slice, reflect.Array:
		out := map[string]string{}
		for i := range v.Children {
			e := &v.Children[i]
			if e.Kind != reflect.Struct || len(e.Children) != 2 {
				continue
			}
			k, val := e.Children[0].Value, e.Children[1].Value
			if k == nil || val == nil || k.Kind() != constant.String || val.Kind() != constant.String {
				continue
			}
			out[constant.StringVal(k)] = constant.StringVal(val)
		}
		return out
	}
	return nil
}
