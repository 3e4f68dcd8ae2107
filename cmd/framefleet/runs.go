package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

// storeFlags are the flags of the verbs that work on recorded runs: which
// configuration, and which store (as render's --out).
type storeFlags struct {
	config configFlags
	out    string
}

func (s *storeFlags) register(fl *pflag.FlagSet) {
	s.config.register(fl)
	fl.StringVar(&s.out, "out", "", "the store the runs are in, as given to render --out (default: the configuration's store, else ./renders)")
}

// open builds the fleet of the configured store; runs name their own engine.
func (s *storeFlags) open(ctx context.Context, g *globalFlags, stderr io.Writer) (*fleet.Fleet, *console, error) {
	cfg, err := s.config.load()
	if err != nil {
		return nil, nil, err
	}
	if s.out != "" {
		cfg.Store, cfg.Bucket, cfg.Prefix = s.out, "", ""
	}
	con, err := g.console(stderr)
	if err != nil {
		return nil, nil, err
	}
	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: con.log})
	if err != nil {
		return nil, nil, err
	}
	return f, con, nil
}

// openRun opens the store and reads the run named by id (or a unique prefix of it).
func (s *storeFlags) openRun(ctx context.Context, g *globalFlags, id string, stderr io.Writer) (*fleet.Fleet, *console, *pipeline.RunRecord, error) {
	flt, con, err := s.open(ctx, g, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := flt.Get(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return flt, con, rec, nil
}

// flagOfSetting maps the core's setting keys (pipeline.SettingError) to the
// flags a CLI user types.
var flagOfSetting = map[string]string{
	pipeline.KeyFrames:     "--frames",
	pipeline.KeyChunk:      "--chunk",
	pipeline.KeyWorkers:    "--workers",
	pipeline.KeyResolution: "--resolution",
	pipeline.KeySamples:    "--samples",
	pipeline.KeyStitch:     "--stitch",
	pipeline.KeyAttempts:   "--attempts",
	pipeline.KeyTimeout:    "--timeout",
	pipeline.KeyForce:      "--force",
	pipeline.KeyBlender:    "--blender",
	pipeline.KeyPoll:       "--poll",
	pipeline.KeyLabels:     "--label",
	pipeline.KeyLinkExpiry: "--set link_expiry",
	pipeline.KeySource:     "FILE.blend",
}

// cliWording words the core's front-end-neutral errors for a CLI user: a
// setting error names the flag, a missing run names the command that lists
// runs and the flag that picks the store; other errors pass unchanged.
func cliWording(err error) error {
	var nf *pipeline.RunNotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("no run %q in this store: `framefleet runs` lists its runs (add --out DIR or s3://bucket/prefix if the run was rendered into another store)", nf.ID)
	}
	var se *pipeline.SettingError
	if !errors.As(err, &se) {
		return err
	}
	name, ok := flagOfSetting[se.Key]
	if !ok {
		return err
	}
	if se.Value == "" {
		return fmt.Errorf("%s: %s", name, se.Reason)
	}
	return fmt.Errorf("%s %s: %s", name, se.Value, se.Reason)
}

// parseLabels reads --label k=v flags.
func parseLabels(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--label %q: give NAME=VALUE, e.g. --label ticket=PRJ-12", kv)
		}
		m[strings.TrimSpace(k)] = v
	}
	return m, nil
}

// engineTitle is an engine's name for people.
func engineTitle(engine string) string {
	switch engine {
	case config.EngineBatch:
		return "AWS Batch"
	case config.EngineLocal:
		return "this machine"
	}
	return engine
}

// ---- framefleet runs ----

type runsFlags struct {
	store   storeFlags
	states  []string
	labels  []string
	limit   int
	cursor  string
	jsonOut bool
}

func newRunsCmd(g *globalFlags) *cobra.Command {
	f := &runsFlags{}
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List recorded runs, newest first",
		Example: `  framefleet runs
  framefleet runs --state running --state interrupted
  framefleet runs --label ticket=PRJ-12 --limit 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRuns(cmd.Context(), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	f.store.register(fl)
	fl.StringSliceVar(&f.states, "state", nil, "only runs in this state: "+strings.Join(runStateNames(), ", ")+" (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "only runs with this label, e.g. --label ticket=PRJ-12 (repeatable: all must match)")
	fl.IntVar(&f.limit, "limit", pipeline.DefaultListLimit, fmt.Sprintf("at most this many runs (1-%d)", pipeline.MaxListLimit))
	fl.StringVar(&f.cursor, "after", "", "continue a listing where the previous page ended (the cursor it printed)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the page as JSON")
	return cmd
}

func runStateNames() []string {
	var names []string
	for _, s := range pipeline.RunStates() {
		names = append(names, string(s))
	}
	return names
}

func runRuns(ctx context.Context, g *globalFlags, f *runsFlags, stdout, stderr io.Writer) error {
	filter := pipeline.ListFilter{Limit: f.limit, Cursor: f.cursor}
	if f.limit < 1 || f.limit > pipeline.MaxListLimit {
		return fmt.Errorf("--limit %d: give 1 to %d", f.limit, pipeline.MaxListLimit)
	}
	for _, s := range f.states {
		st := pipeline.RunState(strings.ToLower(strings.TrimSpace(s)))
		if !slices.Contains(pipeline.RunStates(), st) {
			return fmt.Errorf("--state %q: use one of %s", s, strings.Join(runStateNames(), ", "))
		}
		filter.States = append(filter.States, st)
	}
	if len(f.labels) > 0 {
		var err error
		if filter.Labels, err = parseLabels(f.labels); err != nil {
			return err
		}
	}
	flt, _, err := f.store.open(ctx, g, stderr)
	if err != nil {
		return err
	}
	page, err := flt.List(ctx, filter)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(stdout, page)
	}
	for _, u := range page.Unreadable {
		fmt.Fprintf(stderr, "warning: run %s: %s\n", u.ID, u.Error)
	}
	if len(page.Runs) == 0 {
		fmt.Fprintf(stderr, "no runs in %s match\n", flt.Store.URI())
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tFRAMES\tENGINE\tCREATED\tSOURCE\tLABELS")
	for _, r := range page.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Progress.FramesDone, r.FramesTotal,
			r.Engine, ago(now, r.CreatedAt), r.Source.Name, labelList(r.Labels))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(stderr, "more runs: framefleet runs --after %s\n", page.Next)
	}
	return nil
}

func labelList(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// ago is a short age: "45s ago", "3m ago", "2h ago", "4d ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// ---- framefleet status ----

type statusFlags struct {
	store   storeFlags
	lines   int
	jsonOut bool
}

// runStatus is `framefleet status --json`: the record, its view, and what
// was looked up for it. The table is printed from View and the extras only.
type runStatus struct {
	Run  *pipeline.RunRecord `json:"run"`
	View *pipeline.RunView   `json:"view"`
	// LogTails are the failed chunks' stored Blender log tails, by chunk.
	LogTails map[int]string `json:"log_tails,omitempty"`
	// LogGroup is the CloudWatch Logs group of Batch attempts' streams.
	LogGroup string `json:"log_group,omitempty"`
	// Notes are what could not be looked up (cost, a log), and why.
	Notes []string `json:"notes,omitempty"`
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	f := &statusFlags{}
	cmd := &cobra.Command{
		Use:   "status RUN",
		Short: "Show a run: state, chunks, failures with Blender's log, links and cost",
		Long: `Status shows one run by its id or a unique prefix of it: its state and
chunks, each failed chunk with the end of Blender's log, links to the video
and the newest frame, and the cost so far (vCPU time of finished attempts at
price_per_vcpu_hour).`,
		Example: `  framefleet status k3x9
  framefleet status k3x9p2ad --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatusCmd(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().IntVar(&f.lines, "lines", 10, "lines of each failed chunk's Blender log to show")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the status as JSON")
	return cmd
}

func runStatusCmd(ctx context.Context, g *globalFlags, f *statusFlags, id string, stdout, stderr io.Writer) error {
	flt, _, rec, err := f.store.openRun(ctx, g, id, stderr)
	if err != nil {
		return err
	}
	st, err := lookUpStatus(ctx, flt, rec)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(stdout, st)
	}
	printStatus(stdout, st, f.lines, time.Now())
	return nil
}

// lookUpStatus gathers the run's view and, beyond it, what status shows:
// the cost so far from the engine, the failed chunks' log tails. What
// cannot be found is noted, not fatal: the view alone is worth showing.
func lookUpStatus(ctx context.Context, flt *fleet.Fleet, rec *pipeline.RunRecord) (*runStatus, error) {
	v, err := flt.View(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	st := &runStatus{Run: rec, View: v, LogTails: map[int]string{}}
	if rec.Engine == config.EngineBatch {
		st.LogGroup = flt.LogGroup()
	}
	if c, err := flt.CostSoFar(ctx, rec); errors.Is(err, pipeline.ErrUnknownJob) && rec.HostBound {
		st.Notes = append(st.Notes, "cost: known when the run ends (its workers are children of another framefleet process)")
	} else if err != nil {
		st.Notes = append(st.Notes, "cost: "+err.Error())
	} else {
		v.Cost = pipeline.ViewCost{VCPUSeconds: c.VCPUSeconds, USD: c.USD, Final: c.Final}
	}
	for _, fv := range v.Failures {
		if fv.Chunk < 0 || fv.LogKey == "" {
			continue
		}
		if tail, err := flt.StoredLog(ctx, rec.ID, fv.Chunk); err == nil {
			st.LogTails[fv.Chunk] = tail
		} else if !errors.Is(err, store.ErrNotFound) {
			st.Notes = append(st.Notes, err.Error())
		}
	}
	return st, nil
}

// printStatus prints the status table from the run's view.
func printStatus(w io.Writer, st *runStatus, lines int, now time.Time) {
	v := st.View
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("run", "%s", v.ID)
	row("state", "%s", v.State)
	source := v.Source
	if v.SourceSHA256 != "" {
		source += fmt.Sprintf(" (sha256 %.12s, %d bytes)", v.SourceSHA256, v.SourceSize)
	}
	row("source", "%s", source)
	row("scene", "%s: %d frames in %d chunks, %dx%d at %s fps", v.Scene, v.Progress.FramesTotal, v.Progress.ChunkTotal, v.Width, v.Height, v.FrameRate)
	if v.Jobs != nil {
		row("engine", "%s: render job %s, stitch job %s", engineTitle(v.Engine), v.Jobs.RenderID, v.Jobs.StitchID)
	} else {
		row("engine", "%s (not submitted)", engineTitle(v.Engine))
	}
	row("frames", "%d/%d rendered (%d%%)", v.Progress.FramesDone, v.Progress.FramesTotal, v.Progress.Percent())
	if len(v.Chunks) > 0 {
		row("chunks", "%s", chunkSummary(v.Chunks))
	}
	if l := v.Latest; l != nil {
		row("latest frame", "%d: %s", l.Frame, orKey(l.FrameLink, l.FrameKey))
	}
	if l := v.Links; l != nil {
		for _, x := range []struct{ name, link, key string }{
			{"video", l.Video, l.VideoKey}, {"preview", l.Preview, l.PreviewKey}, {"thumbnail", l.Thumbnail, l.ThumbnailKey},
		} {
			if x.link != "" || x.key != "" {
				row(x.name, "%s", orKey(x.link, x.key))
			}
		}
		if l.ExpiresAt != nil {
			row("links expire", "%s (%s)", l.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), until(now, *l.ExpiresAt))
		}
	}
	for _, warn := range v.Warnings {
		row("warning", "%s", warn)
	}
	if len(v.MissingInputs) > 0 {
		var names []string
		for _, m := range v.MissingInputs {
			names = append(names, m.Path)
		}
		row("missing inputs", "%s", strings.Join(names, ", "))
	}
	if v.Scope != "" {
		row("scope", "%s", v.Scope)
	}
	created := v.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(now, v.CreatedAt) + ")"
	row("created", "%s", created)
	if v.FinishedAt != nil {
		row("finished", "%s, after %s", v.FinishedAt.UTC().Format("2006-01-02 15:04:05 UTC"), v.FinishedAt.Sub(v.CreatedAt).Round(time.Second))
	} else {
		row("updated", "%s", ago(now, v.UpdatedAt))
	}
	if len(v.Labels) > 0 {
		row("labels", "%s", labelList(v.Labels))
	}
	if c := v.Cost; c.VCPUSeconds > 0 || c.USD > 0 {
		so := " so far"
		if c.Final {
			so = ""
		}
		row("cost", "$%.4f%s (%.0f vCPU-seconds)", c.USD, so, c.VCPUSeconds)
	}
	if c := v.Cancelled; c != nil {
		if c.By != "" {
			row("cancelled", "by %s: %s", c.By, c.Reason)
		} else {
			row("cancelled", "%s", c.Reason)
		}
	}
	switch {
	case v.State == pipeline.RunInterrupted:
		row("next", "framefleet watch %s resumes it (only missing frames render)", v.ID)
	case v.State == pipeline.RunFailed:
		row("next", "framefleet logs %s shows the workers' logs", v.ID)
	case !v.Final:
		row("next", "framefleet watch %s follows it; framefleet cancel %s stops it", v.ID, v.ID)
	}
	_ = tw.Flush()
	for _, fv := range v.Failures {
		fmt.Fprintf(w, "\n%s\n", failureTitle(fv))
		if fv.BlenderError != "" && !strings.Contains(fv.Summary, strings.TrimPrefix(fv.BlenderError, "Error: ")) {
			fmt.Fprintf(w, "  Blender said: %s\n", fv.BlenderError)
		}
		if fv.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", fv.Fix)
		}
		if fv.LogStream != "" {
			fmt.Fprintf(w, "  CloudWatch Logs: %s %s (framefleet logs %s --chunk %d)\n", st.LogGroup, fv.LogStream, v.ID, fv.Chunk)
		}
		if tail := lastLines(st.LogTails[fv.Chunk], lines); tail != "" {
			fmt.Fprintf(w, "  Blender's log, last lines:\n    %s\n", strings.ReplaceAll(tail, "\n", "\n    "))
		} else if fv.LogKey != "" {
			fmt.Fprintf(w, "  Blender's log: %s in the store\n", fv.LogKey)
		}
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// failureTitle is a failure's first line: where, then the shaped cause.
func failureTitle(fv pipeline.FailureView) string {
	var where string
	switch fv.Chunk {
	case pipeline.RunChunk:
		return "failed: " + fv.Summary
	case pipeline.StitchChunk:
		where = "the stitch"
	default:
		where = fmt.Sprintf("chunk %d", fv.Chunk)
		if fv.Frames != "" {
			where += " (frames " + fv.Frames + ")"
		}
	}
	if fv.Attempts > 0 {
		where += " failed after " + plural(fv.Attempts, "attempt")
	} else {
		where += " failed"
	}
	return where + ": " + fv.Summary
}

// until says how long until t, or that it is past.
func until(now, t time.Time) string {
	if !t.After(now) {
		return "expired"
	}
	return "in " + strings.TrimSuffix(ago(t, now), " ago")
}

func orKey(link, key string) string {
	if link != "" {
		return link
	}
	return key
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// lastLines is the last n lines of s, without a trailing newline.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" || n <= 0 {
		return ""
	}
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// ---- framefleet watch ----

type watchFlags struct {
	store   storeFlags
	jsonOut bool
}

func newWatchCmd(g *globalFlags) *cobra.Command {
	f := &watchFlags{}
	cmd := &cobra.Command{
		Use:   "watch RUN",
		Short: "Follow a run to its end with the progress bar; resumes an interrupted local run",
		Long: `Watch follows a run, by its id or a unique prefix, from any process until
the video is ready, with the same progress as render. A local run whose
process stopped (Ctrl-C, a crash, a reboot) is resumed under the same id:
only frames not yet stored are rendered. Stopping watch leaves a Batch run
going; a local run it hosts is stopped and can be resumed again.`,
		Example: `  framefleet watch k3x9
  framefleet watch k3x9p2ad --json > result.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the result as JSON on stdout (and nothing else)")
	return cmd
}

func runWatch(ctx context.Context, g *globalFlags, f *watchFlags, id string, stdout, stderr io.Writer) error {
	flt, con, rec, err := f.store.openRun(ctx, g, id, stderr)
	if err != nil {
		return err
	}
	rep := newReporter(con, f.jsonOut)
	rep.runID = rec.ID
	res, err := flt.Watch(ctx, rec.ID, rep.event)
	con.endBar()
	if err != nil {
		return watchError(ctx, err, rec.ID, rec.Engine)
	}
	return printResult(res, f.jsonOut, stdout, stderr)
}

// ---- framefleet cancel ----

type cancelFlags struct {
	store   storeFlags
	reason  string
	jsonOut bool
}

func newCancelCmd(g *globalFlags) *cobra.Command {
	f := &cancelFlags{}
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run: its jobs are stopped, and whoever watches it is told",
		Example: `  framefleet cancel k3x9
  framefleet cancel k3x9p2ad --reason "wrong camera"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCancel(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, recorded in the run and shown to its watchers (default: cancelled by USER)")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the run's record as JSON")
	return cmd
}

func runCancel(ctx context.Context, g *globalFlags, f *cancelFlags, id string, stdout, stderr io.Writer) error {
	flt, _, err := f.store.open(ctx, g, stderr)
	if err != nil {
		return err
	}
	reason := f.reason
	if reason == "" {
		reason = "cancelled from the command line"
	}
	rec, err := flt.CancelBy(ctx, id, userName(), reason)
	if err != nil {
		return err
	}
	// Cancel leaves a finished run as it was: say so rather than claim a cancel.
	ours := rec.State == pipeline.RunCancelled && rec.Failure != nil && rec.Failure.CancelReason == reason
	if rec.State.Final() && !ours {
		return fmt.Errorf("run %s already %s: nothing to cancel", rec.ID, rec.State)
	}
	if f.jsonOut {
		return writeJSON(stdout, rec)
	}
	switch {
	case rec.HostBound:
		fmt.Fprintf(stdout, "run %s cancelled (%s); the framefleet process hosting it stops its workers\n", rec.ID, reason)
	case rec.Handle != nil:
		fmt.Fprintf(stdout, "run %s cancelled (%s); its jobs on %s were asked to stop: render job %s, stitch job %s\n",
			rec.ID, reason, engineTitle(rec.Engine), rec.Handle.RenderID, rec.Handle.StitchID)
	default:
		fmt.Fprintf(stdout, "run %s cancelled (%s) before its jobs were submitted\n", rec.ID, reason)
	}
	return nil
}

func userName() string {
	for _, k := range []string{"USER", "LOGNAME", "USERNAME"} {
		if u := strings.TrimSpace(os.Getenv(k)); u != "" {
			return u
		}
	}
	return "framefleet cancel"
}

// ---- framefleet logs ----

type logsFlags struct {
	store   storeFlags
	chunk   int
	lines   int
	jsonOut bool
}

// stitchIndex stands for the stitch job where chunks are numbered, as in pipeline.ChildFailure.
const stitchIndex = -1

// chunkLogs are one chunk's logs: Blender's stored log tail and, on Batch,
// the CloudWatch Logs stream of its failed attempt.
type chunkLogs struct {
	Chunk       int             `json:"chunk"` // -1: the stitch job
	StoredKey   string          `json:"stored_key,omitempty"`
	Stored      string          `json:"stored,omitempty"`
	Stream      string          `json:"stream,omitempty"`
	StreamLines []fleet.LogLine `json:"stream_lines,omitempty"`
	Notes       []string        `json:"notes,omitempty"`
}

func newLogsCmd(g *globalFlags) *cobra.Command {
	f := &logsFlags{}
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Show a run's worker logs: Blender's, and on AWS Batch CloudWatch Logs",
		Long: `Logs prints the tail of Blender's log that each chunk's worker stored, for
the failed chunks of a failed run, else for every chunk that stored one.
On AWS Batch it adds the CloudWatch Logs stream (group /aws/batch/job) of each
failed attempt, which holds what the worker printed before it could store
anything (an image that would not start, a store it could not reach).`,
		Example: `  framefleet logs k3x9
  framefleet logs k3x9 --chunk 3 --lines 200`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			chunkSet := cmd.Flags().Changed("chunk")
			if !chunkSet {
				f.chunk = -1
			}
			return runLogs(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().IntVar(&f.chunk, "chunk", 0, "only this chunk (0-based, as status shows)")
	cmd.Flags().IntVar(&f.lines, "lines", 50, "lines of each CloudWatch Logs stream")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the logs as JSON")
	return cmd
}

func runLogs(ctx context.Context, g *globalFlags, f *logsFlags, id string, stdout, stderr io.Writer) error {
	if f.lines < 1 || f.lines > 10000 {
		return fmt.Errorf("--lines %d: give 1 to 10000", f.lines)
	}
	flt, _, rec, err := f.store.openRun(ctx, g, id, stderr)
	if err != nil {
		return err
	}
	if f.chunk >= 0 && f.chunk >= max(rec.ChunkTotal, 1) {
		return fmt.Errorf("--chunk %d: run %s has chunks 0 to %d", f.chunk, rec.ID, rec.ChunkTotal-1)
	}
	streams := failedStreams(ctx, flt, rec)
	var chunks []int
	switch {
	case f.chunk >= 0:
		chunks = []int{f.chunk}
	case rec.Failure != nil && len(rec.Failure.Failures) > 0:
		for _, cf := range rec.Failure.Failures {
			if cf.Index >= 0 {
				chunks = append(chunks, cf.Index)
			}
		}
	default:
		objs, err := flt.Store.List(ctx, store.RunPrefix(rec.ID)+"logs/")
		if err != nil {
			return fmt.Errorf("list run %s's logs: %w", rec.ID, err)
		}
		for i := range rec.ChunkTotal {
			if slices.ContainsFunc(objs, func(o store.Object) bool { return o.Key == store.ChunkLogKey(rec.ID, i) }) {
				chunks = append(chunks, i)
			}
		}
	}
	var out []chunkLogs
	if _, ok := streams[stitchIndex]; ok && f.chunk < 0 {
		chunks = append(chunks, stitchIndex)
	}
	for _, c := range chunks {
		cl := chunkLogs{Chunk: c, Stream: streams[c]}
		if c == stitchIndex {
			if ls, err := flt.StreamTail(ctx, cl.Stream, f.lines); err == nil {
				cl.StreamLines = ls
			} else {
				cl.Notes = append(cl.Notes, err.Error())
			}
			out = append(out, cl)
			continue
		}
		cl.StoredKey = store.ChunkLogKey(rec.ID, c)
		if text, err := flt.StoredLog(ctx, rec.ID, c); err == nil {
			cl.Stored = text
		} else if errors.Is(err, store.ErrNotFound) {
			cl.Notes = append(cl.Notes, "no stored Blender log (the worker stores it when the chunk ends)")
		} else {
			cl.Notes = append(cl.Notes, err.Error())
		}
		if cl.Stream != "" {
			if ls, err := flt.StreamTail(ctx, cl.Stream, f.lines); err == nil {
				cl.StreamLines = ls
			} else {
				cl.Notes = append(cl.Notes, err.Error())
			}
		}
		out = append(out, cl)
	}
	if f.jsonOut {
		if out == nil {
			out = []chunkLogs{}
		}
		return writeJSON(stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(stderr, "run %s (%s) has no worker logs yet: each chunk stores Blender's log when it ends\n", rec.ID, rec.State)
		return nil
	}
	for i, cl := range out {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		what := fmt.Sprintf("chunk %d", cl.Chunk)
		if cl.Chunk == stitchIndex {
			what = "stitch job"
		} else {
			fmt.Fprintf(stdout, "==> %s: Blender's log (%s)\n", what, cl.StoredKey)
		}
		if cl.Stored != "" {
			fmt.Fprintln(stdout, strings.TrimRight(cl.Stored, "\n"))
		}
		if cl.Stream != "" {
			fmt.Fprintf(stdout, "==> %s: CloudWatch Logs %s %s\n", what, flt.LogGroup(), cl.Stream)
			for _, l := range cl.StreamLines {
				fmt.Fprintf(stdout, "%s %s\n", l.Time.Format("15:04:05"), l.Message)
			}
		}
		for _, n := range cl.Notes {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
	}
	return nil
}

// failedStreams are the CloudWatch Logs streams of failed attempts by
// chunk: from the record of a failed run, else asked of the engine.
func failedStreams(ctx context.Context, flt *fleet.Fleet, rec *pipeline.RunRecord) map[int]string {
	streams := map[int]string{}
	if rec.Engine != config.EngineBatch {
		return streams
	}
	failures := []pipeline.ChildFailure(nil)
	if rec.Failure != nil {
		failures = rec.Failure.Failures
	}
	if len(failures) == 0 && rec.Handle != nil {
		if eng, err := flt.Engine(ctx, rec.Engine); err == nil {
			if s, err := eng.Status(ctx, *rec.Handle); err == nil {
				failures = s.Failures
			}
		}
	}
	for _, cf := range failures {
		if cf.LogStream != "" {
			streams[cf.Index] = cf.LogStream
		}
	}
	return streams
}
