package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Log formats (--log-format): auto writes sentences for people on a
// terminal and structured text lines elsewhere (CI logs, files, pipes).
const (
	logAuto = "auto"
	logText = "text"
	logJSON = "json"
)

var logFormats = []string{logAuto, logText, logJSON}

// isTerminal reports whether w is a terminal (a pseudo-terminal counts).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// console is stderr shared by log lines and the progress bar: a line is
// printed above the bar, which is then drawn again below it.
type console struct {
	w     io.Writer
	human bool // sentences and a progress bar; else structured log lines
	log   *slog.Logger

	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

// console builds stderr's console from --log-format and --verbose.
func (g *globalFlags) console(stderr io.Writer) (*console, error) {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	c := &console{w: stderr}
	opts := &slog.HandlerOptions{Level: level}
	tty := g.isTerminal
	if tty == nil {
		tty = isTerminal
	}
	switch g.logFormat {
	case logAuto, "":
		if tty(stderr) {
			// A person sees the run's events as sentences; the engines'
			// own progress notes only with --verbose.
			if !g.verbose {
				level = slog.LevelWarn
			}
			c.human = true
			c.log = slog.New(&humanHandler{c: c, level: level})
			return c, nil
		}
		c.log = slog.New(slog.NewTextHandler(stderr, opts))
	case logText:
		c.log = slog.New(slog.NewTextHandler(stderr, opts))
	case logJSON:
		c.log = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		return nil, fmt.Errorf("--log-format %q: use %s", g.logFormat, strings.Join(logFormats, ", "))
	}
	return c, nil
}

// say prints one sentence for a person, above the progress bar.
func (c *console) say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.printLocked(fmt.Sprintf(format, args...))
}

func (c *console) printLocked(line string) {
	if c.bar != nil {
		_ = c.bar.Clear()
	}
	fmt.Fprintln(c.w, line)
	if c.bar != nil {
		_ = c.bar.RenderBlank()
	}
}

// progress draws the bar at done of total frames with a short description.
func (c *console) progress(done, total int, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar == nil {
		c.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(c.w),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("frames"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionFullWidth(),
		)
	}
	c.bar.Describe(what)
	_ = c.bar.Set(done)
}

// endBar leaves the bar's last state on screen and moves below it.
func (c *console) endBar() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar != nil {
		_ = c.bar.Exit()
		fmt.Fprintln(c.w)
		c.bar = nil
	}
}

// humanHandler writes log records as sentences: "Registered job definition
// (revision 3)", warnings prefixed; debug records only with --verbose.
type humanHandler struct {
	c     *console
	level slog.Level
	attrs []slog.Attr
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("Error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("Warning: ")
	}
	msg := r.Message
	if b.Len() == 0 {
		msg = capitalize(msg)
	}
	b.WriteString(msg)
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	if len(attrs) > 0 {
		parts := make([]string, 0, len(attrs))
		for _, a := range attrs {
			parts = append(parts, strings.ReplaceAll(a.Key, "_", " ")+" "+a.Value.String())
		}
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.c.printLocked(b.String())
	return nil
}

func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &humanHandler{c: h.c, level: h.level, attrs: append(slices.Clone(h.attrs), as...)}
}

// WithGroup keeps the attributes flat: a person reads them, no program parses them.
func (h *humanHandler) WithGroup(string) slog.Handler { return h }

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
