// Package cli holds the commands, their flags and wiring, the exit codes and
// every message a user reads. It is the only package that imports cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/config"
	"github.com/kommo-summarizer/kommo-summarizer/pkg/store"
)

// IO is where a command reads and writes: logs and progress on ErrOut, the
// report on Out.
type IO struct {
	In      io.Reader
	Out     io.Writer
	ErrOut  io.Writer
	IsTTY   bool // ErrOut is a terminal: progress bar and text logs
	Environ []string
	// Context is the parent of each command's context; System() cancels it
	// on Ctrl-C and SIGTERM.
	Context func() (context.Context, context.CancelFunc)
}

// System is the real process's IO.
func System() IO {
	return IO{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		IsTTY:   term.IsTerminal(int(os.Stderr.Fd())),
		Environ: os.Environ(),
		Context: func() (context.Context, context.CancelFunc) {
			return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		},
	}
}

// globalOptions are the flags every command has.
type globalOptions struct {
	ConfigPath string
	LogLevel   string
	LogFormat  string
	Quiet      bool
}

// Main runs the command line and returns the exit code.
func Main(args []string, io IO) int {
	if io.Context == nil {
		io.Context = func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }
	}
	g := &globalOptions{}
	root := newRootCmd(io, g)
	root.SetArgs(args)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	ctx, cancel := io.Context()
	defer cancel()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	msg := oneLine(err.Error())
	fmt.Fprintf(io.ErrOut, "kommo-summarizer: %s\n", msg)
	if hint := hintFor(err, msg, cmd); hint != "" {
		fmt.Fprintln(io.ErrOut, hint)
	}
	return code
}

// hintFor returns the line printed under an error, or "" when the message
// already says what to do: every credentials error (exit 4) ends with its own
// advice (`auth login`, the key to check), and some config errors point at
// config.example.yaml themselves. One hint, never two.
func hintFor(err error, msg string, cmd *cobra.Command) string {
	var ue *usageError
	var ce *config.Error
	switch {
	case errors.As(err, &ue):
		path := "kommo-summarizer"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		return "Try: " + path + " --help"
	case errors.As(err, &ce) && !strings.Contains(msg, "config.example.yaml"):
		return "Try: config.example.yaml, which describes every key"
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func newRootCmd(io IO, g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "kommo-summarizer",
		Short: "AI summaries of Kommo deals' chats, written on the deal card",
		Long: `kommo-summarizer reads each active Kommo deal's messenger chat, asks an LLM for a short
structured summary (client context, key facts, open questions, sentiment) and writes it on
the deal card: a note (the history) and a textarea field (the latest).

Run 'sweep' from cron every few hours; 'summarize --lead ID' does one deal now.
Configuration: --config FILE (YAML, see config.example.yaml) and KOMMO_SUMMARIZER_<SECTION>_<KEY>
environment variables (OPENAI_API_KEY for llm.api_key).

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVarP(&g.ConfigPath, "config", "c", "", "config file (YAML)")
	root.PersistentFlags().StringVar(&g.LogLevel, "log-level", "", "debug, info, warn or error (default: log.level)")
	root.PersistentFlags().StringVar(&g.LogFormat, "log-format", "", "auto, json or text (default: log.format; auto = json unless stderr is a terminal)")
	root.PersistentFlags().BoolVarP(&g.Quiet, "quiet", "q", false, "no progress bar")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })

	root.AddCommand(
		newSweepCmd(io, g, nil),
		newSummarizeCmd(io, g, nil),
		newAuthCmd(io, g),
		newStatusCmd(io, g),
		newServeCmd(io, g, nil),
		newDemoCmd(io, g),
		newWebhooksCmd(io, g, nil),
		newBotCmd(io, g, nil, nil),
		newWidgetCmd(io, g, nil),
		newVersionCmd(io),
		newEvalCmd(io, g),
	)
	for _, c := range root.Commands() {
		c.Long = strings.TrimSpace(c.Long+"\n\n"+exitCodesHelp) + "\n"
	}
	refuseUnknownCommands(root)
	return root
}

// refuseUnknownCommands makes each command that only groups others (the
// root, auth) fail on an unknown subcommand with a usage error, exit 2.
// Left to cobra, the root fails with a plain error (exit 1) and the others
// print their help and exit 0. Without arguments they print their help.
func refuseUnknownCommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownCommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default, which SuggestionsFor does not apply
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return &usageError{msg}
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// loadConfig reads the config and checks what the command needs.
func loadConfig(io IO, g *globalOptions, need config.Need) (*config.Config, error) {
	cfg, err := config.Load(g.ConfigPath, io.Environ)
	if err != nil {
		return nil, err
	}
	if g.LogLevel != "" {
		cfg.Log.Level = g.LogLevel
	}
	if g.LogFormat != "" {
		cfg.Log.Format = g.LogFormat
	}
	if err := cfg.Validate(need); err != nil {
		return nil, err
	}
	return cfg, nil
}

// openStore loads the config and opens the store, for the commands that
// need nothing else. The caller closes the store.
func openStore(ctx context.Context, io IO, g *globalOptions) (*config.Config, *store.DB, error) {
	cfg, err := loadConfig(io, g, config.NeedStore)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, cfg.Store.Path)
	if err != nil {
		return nil, nil, err
	}
	return cfg, db, nil
}

// newLogger sets up slog once per command: key/value lines on stderr, JSON
// when stderr is not a terminal (cron), text when it is.
func newLogger(io IO, cfg *config.Config, attrs ...any) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(cfg.Log.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Log.Format
	if format == "" || format == "auto" {
		format = "json"
		if io.IsTTY {
			format = "text"
		}
	}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(io.ErrOut, opts)
	} else {
		h = slog.NewJSONHandler(io.ErrOut, opts)
	}
	l := slog.New(h).With(attrs...)
	for _, w := range cfg.Warnings() {
		l.Warn(w)
	}
	return l
}

var errNoArgs = errors.New("this command takes no arguments")

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%v: %q", errNoArgs, args[0])
	}
	return nil
}
