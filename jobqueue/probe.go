package jobqueue

// CoreField is one field of Queue that `wardgate diag analyze` reads from a
// core dump of a process running a queue (package diag/analyze). The queue
// keeps no package-level state (one process may run several queues), so the
// analyzer finds the Queue in the job queue goroutines' frames and reads
// these fields by name from the binary's DWARF.
type CoreField struct {
	// Role is the value's name in the report: "depth", "capacity", "busy"
	// or "workers".
	Role string
	// Path is the field's path from Queue, dot-separated ("cfg.MaxWorkers").
	// The analyzer matches its last element, case-insensitively, in the
	// struct it finds and in the structs nested up to two levels below it.
	Path string
}

// CoreFields lists the fields of Queue that the analyzer reads, by role. It
// is declared here, next to the struct it describes, so that renaming one of
// those fields fails this package's tests (probe_test.go) instead of
// silently emptying the job queue section of every post-mortem report.
func CoreFields() []CoreField {
	return []CoreField{
		// MAX_QUEUE budget in use: payloads admitted and not yet stored,
		// the spec's queue depth (queued is only the part still in ch).
		{Role: "depth", Path: "reserved"},
		{Role: "capacity", Path: "capacity"},      // MAX_QUEUE
		{Role: "busy", Path: "busy"},              // workers doing work right now
		{Role: "workers", Path: "cfg.MaxWorkers"}, // MAX_WORKERS
	}
}
