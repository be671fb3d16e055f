// Command loadlat measures latency at a fixed request rate for the proxy
// benchmark (bench/proxies.sh), and plots the results.
//
//	loadlat attack -url URL -rate N -duration D
//	loadlat plot -in FILE -out FILE.svg
//
// wrk measures throughput with a closed loop: each connection sends its next
// request when the previous answer is in, so when the server stalls the
// client stops sending and the stall hides in a handful of samples
// ("coordinated omission"). Latency at a fixed rate needs an open loop:
// requests are due on a fixed schedule whatever the server does. attack
// uses github.com/tsenart/vegeta/v12 as a library for that (its attacker
// starts another worker whenever all are busy rather than delaying the
// next request), and in addition measures every latency from the time the
// request was due by the schedule, not from when it was sent, so even a
// stalled sender (a full machine, a GC pause of the generator) is charged
// to the latency as wrk2 does. It prints one line:
//
//	rate achieved_rps p50_ms p99_ms p99.9_ms max_ms errors requests
//
// plot draws the percentiles of several targets at several loads into one
// SVG with gonum.org/v1/plot: a panel per load, a column per target, a
// marker per percentile on a log scale.
//
// It is a bench tool in its own module so vegeta and gonum stay out of
// wardgate's go.mod.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadlat:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: loadlat attack|plot [flags]")
	}
	switch args[0] {
	case "attack":
		return attackCmd(ctx, args[1:], stdout)
	case "plot":
		return plotCmd(args[1:])
	default:
		return fmt.Errorf("unknown command %q (want attack or plot)", args[0])
	}
}

func attackCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	url := fs.String("url", "", "target URL (GET)")
	rate := fs.Int("rate", 1000, "requests per second")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	maxWorkers := fs.Uint64("max-workers", 4096, "upper bound on concurrent requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *rate <= 0 || *duration <= 0 {
		return errors.New("attack: -url, -rate > 0 and -duration > 0 are required")
	}
	s, err := attack(ctx, attackConfig{
		URL: *url, Rate: *rate, Duration: *duration, Timeout: *timeout, MaxWorkers: *maxWorkers,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d %.0f %.3f %.3f %.3f %.3f %d %d\n", *rate, s.Achieved,
		ms(s.P50), ms(s.P99), ms(s.P999), ms(s.Max), s.Errors, s.Requests)
	return err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type attackConfig struct {
	URL        string
	Rate       int // requests per second
	Duration   time.Duration
	Timeout    time.Duration
	MaxWorkers uint64
}

// summary is what one attack measured. Latencies are from the time each
// request was due (see corrected).
type summary struct {
	Requests, Errors    int
	Achieved            float64 // requests completed per second of schedule
	P50, P99, P999, Max time.Duration
}

// attack sends GET cfg.URL at cfg.Rate for cfg.Duration and summarises
// the results. Errors (transport errors, timeouts, statuses outside
// 2xx/3xx) count in Errors and their latencies count too: a proxy that
// fails fast must not look fast.
func attack(ctx context.Context, cfg attackConfig) (summary, error) {
	tr := &http.Transport{
		MaxIdleConnsPerHost: int(cfg.MaxWorkers),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	a := vegeta.NewAttacker(
		vegeta.Client(&http.Client{Transport: tr, Timeout: cfg.Timeout}),
		vegeta.MaxWorkers(cfg.MaxWorkers),
		vegeta.MaxBody(1<<20),
	)
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: cfg.URL})
	total := uint64(cfg.Rate) * uint64(cfg.Duration) / uint64(time.Second)
	pacer := countPacer{ConstantPacer: vegeta.ConstantPacer{Freq: cfg.Rate, Per: time.Second}, total: total}
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	var results []sample
	for r := range a.Attack(targeter, pacer, 0, "") {
		results = append(results, sample{Seq: r.Seq, Start: r.Timestamp, Latency: r.Latency, Failed: r.Error != ""})
	}
	if err := ctx.Err(); err != nil {
		return summary{}, fmt.Errorf("attack %s: %w", cfg.URL, err)
	}
	if len(results) == 0 {
		return summary{}, fmt.Errorf("attack %s: no results", cfg.URL)
	}
	return summarize(results, time.Second/time.Duration(cfg.Rate), cfg.Duration), nil
}

// countPacer is a ConstantPacer that stops after total hits. vegeta's own
// duration limit stops at a time instead: a sender that fell behind would
// then drop the requests it still owed, the slowest ones, and the result
// would look better than the truth.
type countPacer struct {
	vegeta.ConstantPacer
	total uint64
}

func (p countPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.total {
		return 0, true
	}
	return p.ConstantPacer.Pace(elapsed, hits)
}

// sample is the part of a vegeta.Result that summarize needs.
type sample struct {
	Seq     uint64        // position in the schedule (0, 1, 2, ...)
	Start   time.Time     // when the request was actually sent
	Latency time.Duration // from Start to the end of the response body
	Failed  bool
}

// summarize computes the percentiles of the corrected latencies.
func summarize(samples []sample, interval, duration time.Duration) summary {
	lat := corrected(samples, interval)
	slices.Sort(lat)
	// Achieved: requests per second from the schedule's start to the
	// last response; below the requested rate when the target (or the
	// sender) could not keep up.
	var begin, end time.Time
	for i, x := range samples {
		if i == 0 || x.Start.Before(begin) {
			begin = x.Start
		}
		if e := x.Start.Add(x.Latency); e.After(end) {
			end = e
		}
	}
	span := max(end.Sub(begin), duration)
	s := summary{Requests: len(samples), Achieved: float64(len(samples)) / span.Seconds()}
	for _, x := range samples {
		if x.Failed {
			s.Errors++
		}
	}
	s.P50, s.P99, s.P999 = quantile(lat, 0.50), quantile(lat, 0.99), quantile(lat, 0.999)
	s.Max = lat[len(lat)-1]
	return s
}

// corrected returns each sample's latency measured from the time it was
// due: request i is due at begin + i*interval, where begin is the
// schedule's start. vegeta does not export its start time, so begin is
// estimated as the earliest Start - Seq*interval over all samples (the
// request that left most on time). A request sent late because the sender
// fell behind is charged the delay, as wrk2 does; one sent on time keeps
// its measured latency.
func corrected(samples []sample, interval time.Duration) []time.Duration {
	var begin time.Time
	for i, x := range samples {
		b := x.Start.Add(-time.Duration(x.Seq) * interval)
		if i == 0 || b.Before(begin) {
			begin = b
		}
	}
	out := make([]time.Duration, len(samples))
	for i, x := range samples {
		due := begin.Add(time.Duration(x.Seq) * interval)
		out[i] = x.Start.Add(x.Latency).Sub(due)
	}
	return out
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// row is one line of plot's input.
type row struct {
	Target, Load   string
	P50, P99, P999 float64 // milliseconds
}

// readRows parses plot's input: whitespace-separated
// "target load p50_ms p99_ms p99.9_ms" lines; # starts a comment.
func readRows(r io.Reader) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: want 5 fields (target load p50 p99 p99.9), got %d", n, len(f))
		}
		x := row{Target: f[0], Load: f[1]}
		for i, p := range []*float64{&x.P50, &x.P99, &x.P999} {
			v, err := strconv.ParseFloat(f[2+i], 64)
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("line %d: field %d: want a positive number of milliseconds, got %q", n, 3+i, f[2+i])
			}
			*p = v
		}
		rows = append(rows, x)
	}
	return rows, sc.Err()
}

func plotCmd(args []string) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	in := fs.String("in", "", "input file (target load p50 p99 p99.9 per line, milliseconds)")
	out := fs.String("out", "", "output SVG")
	title := fs.String("title", "Latency at fixed load", "title of the first panel")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("plot: -in and -out are required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := readRows(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	w, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := writeSVG(w, rows, *title); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// writeSVG draws rows as one panel per load (in order of first
// appearance), the targets along x in order of first appearance.
func writeSVG(w io.Writer, rows []row, title string) error {
	if len(rows) == 0 {
		return errors.New("plot: no data")
	}
	var targets, loads []string
	for _, r := range rows {
		if !slices.Contains(targets, r.Target) {
			targets = append(targets, r.Target)
		}
		if !slices.Contains(loads, r.Load) {
			loads = append(loads, r.Load)
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		lo, hi = min(lo, r.P50), max(hi, r.P999)
	}
	plots := make([][]*plot.Plot, len(loads))
	for i, load := range loads {
		p := plot.New()
		p.Title.Text = "load: " + load
		if i == 0 {
			p.Title.Text = title + " — " + p.Title.Text
		}
		p.Y.Label.Text = "latency (ms, log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
		p.NominalX(targets...)
		p.X.Tick.Label.Rotation = math.Pi / 8
		p.X.Tick.Label.XAlign = draw.XRight
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		p.Legend.Left = true
		for k, pc := range []struct {
			name  string
			get   func(row) float64
			shape draw.GlyphDrawer
		}{
			{"p50", func(r row) float64 { return r.P50 }, draw.CircleGlyph{}},
			{"p99", func(r row) float64 { return r.P99 }, draw.TriangleGlyph{}},
			{"p99.9", func(r row) float64 { return r.P999 }, draw.SquareGlyph{}},
		} {
			var xys plotter.XYs
			for _, r := range rows {
				if r.Load == load {
					x := float64(slices.Index(targets, r.Target)) + 0.15*float64(k-1)
					xys = append(xys, plotter.XY{X: x, Y: pc.get(r)})
				}
			}
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plot %s %s: %w", load, pc.name, err)
			}
			sc.GlyphStyle.Shape = pc.shape
			sc.GlyphStyle.Radius = vg.Points(3.5)
			sc.GlyphStyle.Color = plotutil.Color(k)
			p.Add(sc)
			p.Legend.Add(pc.name, sc)
		}
		plots[i] = []*plot.Plot{p}
	}
	width, height := vg.Points(float64(max(640, 90*len(targets)))), vg.Points(float64(300*len(loads)))
	c := vgsvg.New(width, height)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(loads), Cols: 1, PadY: vg.Points(18), PadTop: vg.Points(6),
		PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := c.WriteTo(w)
	return err
}
