package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Prometheus names of the wardgate metrics, as the OTel Prometheus exporter
// serves them (docs/metrics.md lists the OTel names and labels).
const (
	serverDuration = "http_server_request_duration_seconds"
	clientDuration = "http_client_request_duration_seconds"

	upstreamRequests  = "wardgate_upstream_requests_total"
	upstreamFailures  = "wardgate_upstream_failures_total"
	upstreamInflight  = "wardgate_upstream_inflight"
	upstreamHealthy   = "wardgate_upstream_healthy"
	upstreamRetries   = "wardgate_upstream_retries_total"
	upstreamEjections = "wardgate_upstream_ejections_total"
	gatewayReloads    = "wardgate_gateway_reloads_total"

	// Served only by gateways with an upstream that has discover:.
	discoveryErrors   = "wardgate_discovery_errors_total"
	discoveryTargets  = "wardgate_discovery_targets"
	discoveryLastGood = "wardgate_discovery_last_success_seconds"

	queueDepth     = "wardgate_queue_depth"
	queueWaiting   = "wardgate_queue_waiting"
	queueCapacity  = "wardgate_queue_capacity"
	queueOldestAge = "wardgate_queue_oldest_age_seconds"
	workersBusy    = "wardgate_workers_busy"
	workersMax     = "wardgate_workers_max"
	accepted       = "wardgate_payloads_accepted_total"
	rejected       = "wardgate_payloads_rejected_total"
	stored         = "wardgate_payloads_stored_total"
	batchSize      = "wardgate_batch_size"
	flushDuration  = "wardgate_batch_flush_duration_seconds"
	putDuration    = "wardgate_blob_put_duration_seconds"
	putBytes       = "wardgate_blob_put_bytes_total"
	putErrors      = "wardgate_blob_put_errors_total"

	// Served by `wardgate up` itself (row "up" of its table), not by
	// the processes it supervises.
	childRestarts  = "wardgate_child_restarts_total"
	childUp        = "wardgate_child_up"
	postmortems    = "wardgate_postmortems_total"
	analyzeSeconds = "wardgate_postmortem_analyze_duration_seconds"
	wdCaptures     = "wardgate_watchdog_captures_total"
)

// Service names the trace links search for in Jaeger (OTEL_SERVICE_NAME
// in docker-compose.yml). A request's trace starts at the gateway and
// holds the job queue's spans too.
const gatewayService = "wardgate-gateway"

// jobqueueService is where batch traces start: a batch's CONSUMER span is
// the root of its own trace (linked to each producer), in the job queue
// that flushed it. Jaeger's service picker switches to the other queues.
const jobqueueService = "wardgate-jobqueue-1"

// ingestRoute keeps the job queue's ingest requests and leaves out the
// gateway's health checks, which hit /healthz every second per target.
const ingestRoute = `http_route="/v1/payloads"`

func gatewayBoard() *dashboard.DashboardBuilder {
	b := newBoard("wardgate-gateway", "wardgate / Gateway",
		"Reverse proxy: request rate, errors and latency by route and status, and the health and load of every upstream target.",
		"wardgate-gateway")
	return addSections(b, []section{
		{"Requests", []panel{
			{kind: statPanel, title: "Request rate", unit: "reqps", w: 6, h: 5,
				desc:    "Requests per second answered by the gateway, all routes.",
				queries: []q{{"sum(" + rate(serverDuration+"_count", "") + ")", "req/s"}}},
			{kind: statPanel, title: "5xx ratio", unit: "percentunit", w: 6, h: 5,
				desc:    "Share of answers that are 5xx (502 upstream broke, 503 no healthy target, 504 upstream timeout). 0 when nothing failed.",
				queries: []q{{"(sum(" + rate(serverDuration+"_count", `http_response_status_code=~"5.."`) + ") or vector(0)) / sum(" + rate(serverDuration+"_count", "") + ")", "5xx"}}},
			{kind: statPanel, title: "p99 latency", unit: "s", w: 6, h: 5,
				desc:    "99th percentile of the time the gateway took to answer, all routes.",
				queries: []q{{quantile("0.99", serverDuration, "", ""), "p99"}}},
			{kind: statPanel, title: "Healthy targets", unit: "short", w: 6, h: 5,
				desc:    "Upstream targets that may receive traffic (healthy and not ejected), out of all targets.",
				queries: []q{{"sum(" + gauge(upstreamHealthy, "") + ")", "healthy"}, {"count(" + gauge(upstreamHealthy, "") + ")", "targets"}}},
			{title: "Request rate by route", unit: "reqps", min0: true, stacked: true,
				desc:    "Requests per second by matched route prefix (no route label: 404 from no matching route).",
				queries: []q{{"sum by (http_route) (" + rate(serverDuration+"_count", "") + ")", "{{http_route}}"}}},
			{title: "Request rate by status code", unit: "reqps", min0: true, stacked: true,
				desc:    "Answers per second by HTTP status code: 2xx served, 4xx refused by the backend or middleware, 5xx the gateway's or the upstream's fault.",
				queries: []q{{"sum by (http_response_status_code) (" + rate(serverDuration+"_count", "") + ")", "{{http_response_status_code}}"}}},
			{title: "Latency p50 / p95 / p99", unit: "s", min0: true, traces: gatewayService,
				desc: "Gateway answer time quantiles over all routes. Exemplar dots link to the trace of one slow request; the panel link opens Jaeger for this time range.",
				queries: []q{
					{quantile("0.5", serverDuration, "", ""), "p50"},
					{quantile("0.95", serverDuration, "", ""), "p95"},
					{quantile("0.99", serverDuration, "", ""), "p99"},
				}},
			{title: "Latency p99 by route", unit: "s", min0: true, traces: gatewayService,
				desc:    "99th percentile answer time per route: which route is slow.",
				queries: []q{{quantile("0.99", serverDuration, "http_route", ""), "{{http_route}}"}}},
		}},
		{"Per instance (one line per gateway process or pod)", []panel{
			{title: "Request rate by instance", unit: "reqps", min0: true, stacked: true,
				desc:    "Requests per second answered by each gateway. Behind one Service the replicas should carry about the same share; one far below the others is not getting traffic (readiness, endpoints), one far above is taking more than its share (long-lived connections pinned to it).",
				queries: []q{{"sum by (instance) (" + rate(serverDuration+"_count", "") + ")", "{{instance}}"}}},
			{title: "5xx ratio by instance", unit: "percentunit", min0: true,
				desc:    "Share of each gateway's answers that are 5xx. One instance high while the others are at 0 is that instance's view of the upstreams (its health checks, its DNS answers, its network), not the upstreams themselves.",
				queries: []q{{"(sum by (instance) (" + rate(serverDuration+"_count", `http_response_status_code=~"5.."`) + ") or (0 * sum by (instance) (" + rate(serverDuration+"_count", "") + "))) / sum by (instance) (" + rate(serverDuration+"_count", "") + ")", "{{instance}}"}}},
			{title: "Latency p99 by instance", unit: "s", min0: true, traces: gatewayService,
				desc:    "99th percentile answer time per gateway: a single slow replica (CPU throttled, noisy node) shows here and hides in the fleet quantile.",
				queries: []q{{quantile("0.99", serverDuration, "instance", ""), "{{instance}}"}}},
			{title: "In-flight upstream requests by instance", unit: "short", min0: true, stacked: true,
				desc:    "Requests each gateway has in flight to its upstreams right now (all targets).",
				queries: []q{{"sum by (instance) (" + gauge(upstreamInflight, "") + ")", "{{instance}}"}}},
		}},
		{"Upstream targets", []panel{
			{title: "Attempts by target", unit: "reqps", min0: true, stacked: true,
				desc:    "Finished upstream attempts per second by target, retries included.",
				queries: []q{{"sum by (upstream, target) (" + rate(upstreamRequests, "") + ")", "{{upstream}} {{target}}"}}},
			{title: "Traffic share by target", unit: "percentunit", min0: true, stacked: true, max: ptr(1.0),
				desc:    "Each target's share of its upstream's attempts: how the balancer spreads the load (weights, ejections, least-loaded picks).",
				queries: []q{{"sum by (upstream, target) (" + rate(upstreamRequests, "") + ") / on (upstream) group_left sum by (upstream) (" + rate(upstreamRequests, "") + ")", "{{upstream}} {{target}}"}}},
			{title: "Failures by target", unit: "reqps", min0: true,
				desc:    "Failed attempts per second by target: transport errors, 502 and 504. Failures feed passive ejection.",
				queries: []q{{"sum by (upstream, target) (" + rate(upstreamFailures, "") + ")", "{{upstream}} {{target}}"}}},
			{title: "Upstream attempt latency p95 by target", unit: "s", min0: true, traces: gatewayService,
				desc:    "95th percentile duration of one attempt against each target (the CLIENT span), as the gateway measured it.",
				queries: []q{{quantile("0.95", clientDuration, "server_address, server_port", ""), "{{server_address}}:{{server_port}}"}}},
			{kind: stateTimeline, title: "Target health", unit: "bool_yes_no", w: 24, h: 6,
				desc:    "1 when the target may receive traffic (active health check passing and not passively ejected), 0 when it is skipped.",
				mapping: map[string]string{"0": "down", "1": "up"},
				queries: []q{{gauge(upstreamHealthy, ""), "{{instance}} {{upstream}} {{target}}"}}},
			{title: "In-flight requests by target", unit: "short", min0: true, stacked: true,
				desc:    "Requests currently proxied to each target. A target whose in-flight count grows while others stay flat is slow.",
				queries: []q{{"sum by (upstream, target) (" + gauge(upstreamInflight, "") + ")", "{{upstream}} {{target}}"}}},
			{title: "Retries", unit: "reqps", min0: true,
				desc:    "Attempts per second that retried a failed attempt on another target (idempotent requests, or requests that never reached the upstream).",
				queries: []q{{"sum by (upstream) (" + rate(upstreamRetries, "") + ")", "{{upstream}}"}}},
			{title: "Passive ejections", unit: "short", min0: true,
				desc:    "Times a target was ejected for failing fail_threshold attempts within the window, per rate interval.",
				queries: []q{{"sum by (upstream, target) (increase(" + upstreamEjections + "{" + sel + "}[$__rate_interval]))", "{{upstream}} {{target}}"}}},
			{title: "Config reloads", unit: "short", min0: true,
				desc:    "Config reloads by gateway and result per rate interval (SIGHUP or file change; a ConfigMap update reaches every pod within the kubelet's sync period). A refused reload (error) keeps the old config serving: check that gateway's log line naming the field.",
				queries: []q{{"sum by (instance, result) (increase(" + gatewayReloads + "{" + sel + "}[$__rate_interval]))", "{{instance}} {{result}}"}}},
		}},
		{"DNS discovery (upstreams with discover:)", []panel{
			{kind: statPanel, title: "Discovery errors", unit: "short", w: 6, h: 5,
				desc:    "Failed DNS resolutions of discovered upstreams per rate interval, all gateways (the sparkline is the time range). Each failure keeps the last good targets, so traffic goes on, possibly to stale addresses. No data: no gateway in the selection has a discover: upstream.",
				queries: []q{{"sum(increase(" + discoveryErrors + "{" + sel + "}[$__rate_interval]))", "errors"}}},
			{kind: statPanel, title: "Discovered targets (min / max over gateways)", unit: "short", w: 6, h: 5,
				desc:    "Smallest and largest address set any gateway holds for a discovered upstream. They differ for a re-resolve interval after a scale or rollout; differing for longer means one gateway's DNS answers are stale (its errors panel below).",
				queries: []q{{"min(" + gauge(discoveryTargets, "") + ")", "min"}, {"max(" + gauge(discoveryTargets, "") + ")", "max"}}},
			{kind: statPanel, title: "Oldest DNS answer in use", unit: "s", w: 6, h: 5,
				desc:    "Age of the oldest last-good answer any gateway serves from: about the re-resolve interval (or the TTL when shorter) while DNS answers; growing, resolution has been failing that long and the targets may be stale.",
				queries: []q{{"max(time() - " + gauge(discoveryLastGood, "") + ")", "age"}}},
			{kind: statPanel, title: "Gateways failing to resolve now", unit: "short", w: 6, h: 5,
				desc: "Gateways with at least one failed resolution in the last rate interval, out of the gateways that discover. Non-zero on one: that pod's resolver path; on all: the DNS server or the Service name.",
				queries: []q{
					{"count(sum by (instance) (increase(" + discoveryErrors + "{" + sel + "}[$__rate_interval])) > 0) or vector(0)", "failing"},
					{"count(count by (instance) (" + gauge(discoveryTargets, "") + "))", "discovering"},
				}},
			{title: "Discovered targets by gateway", unit: "short", min0: true,
				desc:    "Address-set size each gateway holds per discovered upstream (the last good answer). Compare with the replica count of the discovered Deployment: a step down that the replicas did not take is a DNS problem.",
				queries: []q{{"sum by (instance, upstream) (" + gauge(discoveryTargets, "") + ")", "{{instance}} {{upstream}}"}}},
			{title: "Age of the last good DNS answer by gateway", unit: "s", min0: true,
				desc:    "Seconds since each gateway last resolved each discovered upstream successfully (the answer changed or not). A sawtooth up to the interval is healthy; a line climbing steadily is a gateway serving from a stale answer.",
				queries: []q{{"time() - max by (instance, upstream) (" + gauge(discoveryLastGood, "") + ")", "{{instance}} {{upstream}}"}}},
			{title: "Discovery errors by reason", unit: "short", min0: true, stacked: true,
				desc:    "Failed resolutions per rate interval by gateway, upstream and reason: timeout or network (resolver unreachable), servfail, nxdomain (wrong name or namespace), refused, empty (no ready pod behind a headless Service, unless allow_empty).",
				queries: []q{{"sum by (instance, upstream, reason) (increase(" + discoveryErrors + "{" + sel + "}[$__rate_interval]))", "{{instance}} {{upstream}} {{reason}}"}}},
		}},
	})
}

func jobqueueBoard() *dashboard.DashboardBuilder {
	b := newBoard("wardgate-jobqueue", "wardgate / Job queue",
		"Ingest service: payloads accepted, rejected and stored, the bounded queue and worker pool, batches and blob store uploads.",
		"wardgate-jobqueue")
	return addSections(b, []section{
		{"Fleet", []panel{
			{kind: statPanel, title: "Job queues up", unit: "short", w: 6, h: 5,
				desc:    "Job-queue processes (pods) Prometheus scrapes successfully, out of all it knows.",
				queries: []q{{"sum(" + gauge("up", "") + ")", "up"}, {"count(" + gauge("up", "") + ")", "instances"}}},
			{kind: statPanel, title: "Accepted (fleet)", unit: "cps", w: 6, h: 5,
				desc:    "Payloads per second admitted by all job queues together.",
				queries: []q{{"sum(" + rate(accepted, "") + ")", "accepted/s"}}},
			{kind: statPanel, title: "Queue depth (fleet)", unit: "short", w: 6, h: 5,
				desc:    "Payloads admitted and not yet stored across all job queues, against their summed capacity. Each queue refuses on its own: see Queue fill by instance.",
				queries: []q{{"sum(" + gauge(queueDepth, "") + ")", "depth"}, {"sum(" + gauge(queueCapacity, "") + ")", "capacity"}}},
			{kind: statPanel, title: "Fullest queue", unit: "percentunit", w: 6, h: 5,
				desc:    "Queue fill of the fullest job queue. Near 100% that instance answers 503 while the fleet total may look fine: the gateway spreads by its own balancer, not by queue depth.",
				queries: []q{{"max(" + gauge(queueDepth, "") + " / on (job, instance) " + gauge(queueCapacity, "") + ")", "max fill"}}},
		}},
		{"Ingest", []panel{
			{title: "Payloads accepted / stored", unit: "cps", min0: true,
				desc: "Payloads per second admitted into the queue (answered 202) and written to the blob store. Stored lagging accepted means the queue is filling.",
				queries: []q{
					{"sum by (instance) (" + rate(accepted, "") + ")", "accepted {{instance}}"},
					{"sum by (instance) (" + rate(stored, "") + ")", "stored {{instance}}"},
				}},
			{title: "Rejected requests by reason", unit: "reqps", min0: true, stacked: true,
				desc:    "POST /v1/payloads refused per second, by reason: bad JSON (400), auth (401), method (405), too large (413), content type (415), queue full (503).",
				queries: []q{{"sum by (reason) (" + rate(rejected, "") + ")", "{{reason}}"}}},
			{title: "Ingest requests by status code", unit: "reqps", min0: true, stacked: true,
				desc:    "POST /v1/payloads answers per second by HTTP status code (the gateway's health checks on /healthz are left out).",
				queries: []q{{"sum by (http_response_status_code) (" + rate(serverDuration+"_count", ingestRoute) + ")", "{{http_response_status_code}}"}}},
			{title: "Ingest latency p50 / p95 / p99", unit: "s", min0: true, traces: gatewayService,
				desc: "Time to answer a POST (decode, admit, and with ACK_MODE=durable wait for the store). Exemplars link to the request's trace.",
				queries: []q{
					{quantile("0.5", serverDuration, "", ingestRoute), "p50"},
					{quantile("0.95", serverDuration, "", ingestRoute), "p95"},
					{quantile("0.99", serverDuration, "", ingestRoute), "p99"},
				}},
			{title: "Ingest latency p99 by instance", unit: "s", min0: true, traces: gatewayService,
				desc:    "99th percentile time to answer a POST, per job queue: one slow instance (starved node, slow disk for SPILL_DIR, its blob PUTs retrying) shows here.",
				queries: []q{{quantile("0.99", serverDuration, "instance", ingestRoute), "{{instance}}"}}},
			{title: "Rejected requests by instance", unit: "reqps", min0: true, stacked: true,
				desc:    "POST /v1/payloads refused per second by each job queue (all reasons). 503s on one instance only: its queue is full while the others have room.",
				queries: []q{{"sum by (instance) (" + rate(rejected, "") + ")", "{{instance}}"}}},
		}},
		{"Queue and workers", []panel{
			{title: "Queue depth vs capacity", unit: "short", min0: true,
				desc: "Payloads admitted and not yet stored (queued, batching or uploading) against MAX_QUEUE. Ingest answers 503 when depth would pass capacity.",
				queries: []q{
					{gauge(queueDepth, ""), "depth {{instance}}"},
					{gauge(queueWaiting, ""), "waiting for a worker {{instance}}"},
					{gauge(queueCapacity, ""), "capacity {{instance}}"},
				}},
			{title: "Queue fill", unit: "percentunit", min0: true, max: ptr(1.0),
				desc:    "Depth as a share of capacity. Near 100% the queue refuses collections (503 + Retry-After).",
				queries: []q{{gauge(queueDepth, "") + " / on (job, instance) " + gauge(queueCapacity, ""), "{{instance}}"}}},
			{title: "Oldest payload age", unit: "s", min0: true,
				desc:    "Age of the oldest payload not yet stored. Growing steadily: workers or the blob store cannot keep up.",
				queries: []q{{gauge(queueOldestAge, ""), "{{instance}}"}}},
			{title: "Busy workers vs max", unit: "short", min0: true,
				desc: "Workers encoding, compressing or uploading a batch against MAX_WORKERS. Pinned at max: the pool is the bottleneck.",
				queries: []q{
					{gauge(workersBusy, ""), "busy {{instance}}"},
					{gauge(workersMax, ""), "max {{instance}}"},
				}},
		}},
		{"Batches and blob store", []panel{
			{title: "Batch size", unit: "short", min0: true,
				desc: "Payloads per stored object: median, 99th percentile and mean. Small batches under load mean BATCH_MAX_WAIT fires before BATCH_MAX_PAYLOADS.",
				queries: []q{
					{quantile("0.5", batchSize, "", ""), "p50"},
					{quantile("0.99", batchSize, "", ""), "p99"},
					{"sum(" + rate(batchSize+"_sum", "") + ") / sum(" + rate(batchSize+"_count", "") + ")", "mean"},
				}},
			{title: "Batch flush latency p50 / p95 / p99", unit: "s", min0: true, traces: jobqueueService,
				desc: "Time to encode, compress and store a batch, retries included. Exemplars link to the batch's CONSUMER span, which links to every producer.",
				queries: []q{
					{quantile("0.5", flushDuration, "", ""), "p50"},
					{quantile("0.95", flushDuration, "", ""), "p95"},
					{quantile("0.99", flushDuration, "", ""), "p99"},
				}},
			{title: "Blob PUT latency p95 by outcome", unit: "s", min0: true, traces: jobqueueService,
				desc:    "95th percentile duration of one PUT attempt to the blob store, by outcome.",
				queries: []q{{quantile("0.95", putDuration, "outcome", ""), "{{outcome}}"}}},
			{title: "Blob PUT attempts and errors", unit: "ops", min0: true,
				desc: "PUT attempts per second by outcome, and failed attempts per second. Errors are retried with backoff; while they last the queue fills.",
				queries: []q{
					{"sum by (outcome) (" + rate(putDuration+"_count", "") + ")", "attempts {{outcome}}"},
					{"sum by (instance) (" + rate(putErrors, "") + ")", "errors {{instance}}"},
				}},
			{title: "Blob bytes written", unit: "Bps", min0: true,
				desc:    "Bytes per second of objects stored (after compression).",
				queries: []q{{"sum by (instance) (" + rate(putBytes, "") + ")", "{{instance}}"}}},
			{title: "PUTs per payload", unit: "short", min0: true,
				desc:    "PUT attempts per stored payload: 1/batch size when all goes well; higher means retries or small batches. Blob store cost scales with it.",
				queries: []q{{"sum(" + rate(putDuration+"_count", "") + ") / sum(" + rate(stored, "") + ")", "PUTs per payload"}}},
		}},
	})
}

func runtimeBoard() *dashboard.DashboardBuilder {
	b := newBoard("wardgate-go-runtime", "wardgate / Go runtime",
		"Go runtime and process health per process: goroutines, heap, GC, scheduler latency, CPU and memory.",
		"")
	const legend = "{{job}} {{instance}}"
	return addSections(b, []section{
		{"Goroutines and scheduler", []panel{
			{title: "Goroutines", unit: "short", min0: true,
				desc:    "Live goroutines per process. The job queue's count stays bounded under any load; steady growth is a leak (see the goroutine profile with `wardgate diag goroutines`).",
				queries: []q{{gauge("go_goroutines", ""), legend}}},
			{title: "Scheduler latency p99", unit: "s", min0: true,
				desc:    "99th percentile time a goroutine waited runnable before running (runtime/metrics /sched/latencies). High: CPU starved or GOMAXPROCS too small.",
				queries: []q{{quantile("0.99", "go_sched_latencies_seconds", "job, instance", ""), legend}}},
			{title: "OS threads and GOMAXPROCS", unit: "short", min0: true,
				desc: "OS threads created by the runtime, and GOMAXPROCS.",
				queries: []q{
					{gauge("go_threads", ""), "threads " + legend},
					{gauge("go_sched_gomaxprocs_threads", ""), "GOMAXPROCS " + legend},
				}},
			{title: "CPU", unit: "percentunit", min0: true,
				desc:    "CPU time per second (1 = one core busy).",
				queries: []q{{rate("process_cpu_seconds_total", ""), legend}}},
		}},
		{"Memory and GC", []panel{
			{title: "Heap", unit: "bytes", min0: true,
				desc: "Heap bytes in live and not-yet-swept objects, and heap bytes obtained from the OS.",
				queries: []q{
					{gauge("go_memstats_heap_alloc_bytes", ""), "alloc " + legend},
					{gauge("go_memstats_heap_sys_bytes", ""), "sys " + legend},
				}},
			{title: "Resident memory", unit: "bytes", min0: true,
				desc:    "Resident set size of each process (what the OOM killer sees).",
				queries: []q{{gauge("process_resident_memory_bytes", ""), legend}}},
			{title: "Allocation rate", unit: "Bps", min0: true,
				desc:    "Bytes allocated on the heap per second. Drives GC frequency.",
				queries: []q{{rate("go_memstats_alloc_bytes_total", ""), legend}}},
			{title: "GC cycles", unit: "ops", min0: true,
				desc:    "Completed GC cycles per second.",
				queries: []q{{rate("go_gc_duration_seconds_count", ""), legend}}},
			{title: "GC pause", unit: "s", min0: true,
				desc: "Stop-the-world pause: longest and median over the recent cycles (go_gc_duration_seconds summary), and the p99 of GC stop-the-world pauses from runtime/metrics (/sched/pauses/total/gc).",
				queries: []q{
					// OpenMetrics writes quantile="1.0", the text format "1".
					{gauge("go_gc_duration_seconds", `quantile=~"1|1.0"`), "max " + legend},
					{gauge("go_gc_duration_seconds", `quantile="0.5"`), "median " + legend},
					{quantile("0.99", "go_sched_pauses_total_gc_seconds", "job, instance", ""), "p99 " + legend},
				}},
			{title: "Open file descriptors", unit: "short", min0: true,
				desc: "Open file descriptors against the process limit.",
				queries: []q{
					{gauge("process_open_fds", ""), "open " + legend},
					{gauge("process_max_fds", ""), "max " + legend},
				}},
		}},
	})
}

// diagnosticsBoard shows what an SRE reads when something went wrong:
// restarts (a crash leaves a post-mortem bundle under DATA/postmortem/),
// what the supervisor of `wardgate up` did about them (restarts by reason,
// post-mortems, watchdog captures, from up's own admin listener), scrape
// health, goroutine spikes and memory pressure. `diag watch` triggers have
// no panel: watch runs as a one-off command with no listener to scrape.
func diagnosticsBoard() *dashboard.DashboardBuilder {
	b := newBoard("wardgate-diagnostics", "wardgate / Diagnostics",
		"Signals to start an investigation from: restarts (each crash of a supervised child leaves a post-mortem bundle under DATA/postmortem/), what wardgate up did about them (restarts by reason, post-mortems, watchdog captures), scrape health, goroutine spikes and memory pressure.",
		"")
	const legend = "{{job}} {{instance}}"
	return addSections(b, []section{
		{"Restarts and availability", []panel{
			{kind: statPanel, title: "Restarts in range", unit: "short", w: 8, h: 5,
				desc:    "Process restarts in the dashboard's time range (changes of process_start_time_seconds). Each crash restart of a job queue under `wardgate up` leaves a post-mortem in DATA/postmortem/.",
				queries: []q{{"sum(changes(" + gauge("process_start_time_seconds", "") + "[$__range]))", "restarts"}}},
			{kind: statPanel, title: "Targets up", unit: "short", w: 8, h: 5,
				desc:    "Scrape targets answering /metrics, out of all.",
				queries: []q{{"sum(" + gauge("up", "") + ")", "up"}, {"count(" + gauge("up", "") + ")", "targets"}}},
			{kind: statPanel, title: "Max goroutines", unit: "short", w: 8, h: 5,
				desc:    "Highest goroutine count of any process in the range.",
				queries: []q{{"max(max_over_time(" + gauge("go_goroutines", "") + "[$__range]))", "max"}}},
			{kind: stateTimeline, title: "Scrape target up", unit: "bool_yes_no", w: 24, h: 6,
				desc:    "1 when Prometheus could scrape the admin listener. A gap while the process restarted shows here.",
				mapping: map[string]string{"0": "down", "1": "up"},
				queries: []q{{gauge("up", ""), legend}}},
			{title: "Uptime", unit: "s", min0: true,
				desc:    "Seconds since each process started. A drop to zero is a restart: look for a post-mortem bundle of that time.",
				queries: []q{{"time() - " + gauge("process_start_time_seconds", ""), legend}}},
			{title: "Restarts", unit: "short", min0: true,
				desc:    "Restarts per rate interval (process_start_time_seconds changed).",
				queries: []q{{"changes(" + gauge("process_start_time_seconds", "") + "[$__rate_interval])", legend}}},
		}},
		{"Supervisor (wardgate up)", []panel{
			{kind: statPanel, title: "Post-mortems", unit: "short", w: 6, h: 5,
				desc: "Post-mortems `wardgate up` wrote under DATA/postmortem/ since it started, and how many of those have no report because the analysis failed (the core is still there: run `wardgate diag analyze` on the directory).",
				queries: []q{
					{"sum(" + gauge(postmortems, "") + ")", "post-mortems"},
					{"sum(" + gauge(postmortems, `result="analyze_failed"`) + ")", "analysis failed"},
				}},
			{kind: statPanel, title: "Child restarts", unit: "short", w: 6, h: 5,
				desc:    "Restarts of supervised children since `wardgate up` started, whatever the reason.",
				queries: []q{{"sum(" + gauge(childRestarts, "") + ")", "restarts"}}},
			{kind: statPanel, title: "Children up", unit: "short", w: 6, h: 5,
				desc: "Children running and ready, out of all that `wardgate up` supervises.",
				queries: []q{
					{"sum(" + gauge(childUp, "") + ")", "up"},
					{"count(" + gauge(childUp, "") + ")", "children"},
				}},
			{kind: statPanel, title: "Watchdog captures", unit: "short", w: 6, h: 5,
				desc:    "Children found stuck in their crash path (crash output started, process not exiting), captured live and killed, since `wardgate up` started.",
				queries: []q{{"sum(" + gauge(wdCaptures, "") + ")", "captures"}}},
			{title: "Child restarts by reason", unit: "short", min0: true, stacked: true,
				desc:    "Restarts per rate interval, by service and why the process died: `crash` (core dumped or crash output: a post-mortem was written), `watchdog` (stuck in its crash path, captured and killed), `signal` (killed without a crash: kill -9, the OOM killer), `exit` (exited on its own).",
				queries: []q{{"sum by (service, reason) (increase(" + childRestarts + "{" + sel + "}[$__rate_interval]))", "{{service}} {{reason}}"}}},
			{title: "Post-mortems captured", unit: "short", min0: true, stacked: true,
				desc:    "Post-mortems written per rate interval, by service and result: `analyzed` (report.md and report.json next to the core), `analyze_failed` (core kept, no report), `no_core` (crash output only: check `wardgate diag crash-setup`).",
				queries: []q{{"sum by (service, result) (increase(" + postmortems + "{" + sel + "}[$__rate_interval]))", "{{service}} {{result}}"}}},
			{kind: stateTimeline, title: "Children up", unit: "bool_yes_no", w: 24, h: 6,
				desc:    "1 while a supervised child runs and has passed its readiness check; 0 while it is down or restarting (the backoff doubles from 100ms to 10s while it keeps dying).",
				mapping: map[string]string{"0": "down", "1": "up"},
				queries: []q{{gauge(childUp, ""), "{{service}}"}}},
			{title: "Watchdog captures", unit: "short", min0: true,
				desc:    "Watchdog captures per rate interval, by service. Each one is a post-mortem whose core was taken from the live, stuck process.",
				queries: []q{{"sum by (service) (increase(" + wdCaptures + "{" + sel + "}[$__rate_interval]))", "{{service}}"}}},
			{title: "Post-mortem analysis time", unit: "s", min0: true,
				desc: "Mean time to analyze a post-mortem core (the delve report), over the analyses that finished in each rate interval; 0 where none finished (every supervised service has a line from the start). Minutes here mean a large core or a starved machine.",
				// The histogram has no series before the first analysis, so
				// every supervised service (wardgate_child_up) is 0 where
				// no analysis finished: a healthy stack shows 0, not "No data".
				queries: []q{{"(sum by (service) (increase(" + analyzeSeconds + "_sum{" + sel + "}[$__rate_interval])) / (sum by (service) (increase(" + analyzeSeconds + "_count{" + sel + "}[$__rate_interval])) > 0))" +
					" or on (service) (0 * sum by (service) (" + childUp + "{" + sel + "}))", "{{service}}"}}},
		}},
		{"Spikes", []panel{
			{title: "Goroutines vs range average", unit: "short", min0: true,
				desc: "Goroutines now against their average over the time range. A spike is when to run `wardgate diag goroutines` (or `diag watch --goroutines N` to capture it automatically).",
				queries: []q{
					{gauge("go_goroutines", ""), "now " + legend},
					{"avg_over_time(" + gauge("go_goroutines", "") + "[$__range])", "avg " + legend},
				}},
			{title: "Heap vs GC goal", unit: "bytes", min0: true,
				desc: "Live heap against the heap size the GC aims for. Heap pressing on GOMEMLIMIT makes the GC run continuously.",
				queries: []q{
					{gauge("go_memstats_heap_alloc_bytes", ""), "heap " + legend},
					{gauge("go_gc_heap_goal_bytes", ""), "goal " + legend},
				}},
			{title: "Scrape duration", unit: "s", min0: true,
				desc:    "How long /metrics took to answer. A process that is stuck or starved answers slowly before it stops answering.",
				queries: []q{{gauge("scrape_duration_seconds", ""), legend}}},
			{title: "CPU", unit: "percentunit", min0: true,
				desc:    "CPU time per second (1 = one core). A spike is when to take `wardgate diag profile --type cpu`.",
				queries: []q{{rate("process_cpu_seconds_total", ""), legend}}},
		}},
	})
}
