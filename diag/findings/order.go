package findings

import (
	"sort"
	"strconv"
)

// Order puts groups in reading order and renumbers them: the groups the
// findings name first, in the findings' order; then the others, the
// idle-by-design ones last; ties by less (nil keeps the order given). It
// returns the original indices in that order and each group's idle reason
// (by original index), and rewrites the findings' provisional references
// (the groups' Ref) to "group N", N being the place in the order.
func Order(c *Classifier, groups []Group, fs []Finding, less func(a, b *Group) bool) (order []int, idle []string) {
	rank := make([]int, len(groups))
	idle = make([]string, len(groups))
	byRef := make(map[string]int, len(groups))
	for i := range groups {
		rank[i] = len(fs)
		idle[i] = c.IdleReason(&groups[i])
		byRef[groups[i].Ref] = i
		order = append(order, i)
	}
	for k, f := range fs {
		if i, ok := byRef[f.Ref]; ok && rank[i] > k {
			rank[i] = k
		}
	}
	sort.SliceStable(order, func(x, y int) bool {
		a, b := order[x], order[y]
		if rank[a] != rank[b] {
			return rank[a] < rank[b]
		}
		if (idle[a] == "") != (idle[b] == "") {
			return idle[a] == ""
		}
		return less != nil && less(&groups[a], &groups[b])
	})
	newRef := make(map[string]string, len(groups))
	for k, i := range order {
		newRef[groups[i].Ref] = GroupRef(k)
	}
	for i := range fs {
		if r, ok := newRef[fs[i].Ref]; ok && fs[i].Ref != "" {
			fs[i].Ref = r
		}
	}
	return order, idle
}

// GroupRef is the reference of the group at place k (from 0) of an Order.
func GroupRef(k int) string { return "group " + strconv.Itoa(k+1) }
