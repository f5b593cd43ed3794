package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/widget"
)

type widgetPackOptions struct {
	IO     IO
	Global *globalOptions
	URL    string
	Output string
	Code   string
}

func newWidgetCmd(io IO, g *globalOptions, runF func(context.Context, *widgetPackOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "widget",
		Short: "Build the Kommo widget that adds the AI reply step to the Salesbot designer",
	}
	opts := &widgetPackOptions{IO: io, Global: g}
	pack := &cobra.Command{
		Use:   "pack --url PUBLIC_URL -o widget.zip",
		Short: "Write the widget's zip, ready for Kommo's \"Upload widget\"",
		Long: `Write the widget archive: manifest.json (the Salesbot designer location), script.js (the
"AI reply" step: a widget_request to PUBLIC_URL/salesbot/widget_request with the client's
message, then exits on {{json.status}}: success, handoff, fail), i18n in English and
Russian, and the logos. Without --url, serve.public_url from the config is used.`,
		Example: `  kommo-summarizer widget pack --url https://bot.example.com -o widget.zip`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Output == "" {
				return usagef("-o: the zip file to write is required")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return widgetPackRun(cmd.Context(), opts)
		},
	}
	pack.Flags().StringVar(&opts.URL, "url", "", "serve's public https address, as Kommo reaches it (default: serve.public_url)")
	pack.Flags().StringVarP(&opts.Output, "output", "o", "", "the zip file to write (required)")
	pack.Flags().StringVar(&opts.Code, "code", "", "the widget's code in Kommo, for the designer's logo path (default kommo_summarizer_bot)")
	cmd.AddCommand(pack)
	return cmd
}

func widgetPackRun(_ context.Context, opts *widgetPackOptions) error {
	public := opts.URL
	if public == "" {
		cfg, err := loadConfig(opts.IO, opts.Global, 0)
		if err != nil {
			return err
		}
		public = cfg.Serve.PublicURL
		if public == "" {
			return usagef("--url: serve's public address is required (or set serve.public_url)")
		}
	}
	var buf bytes.Buffer
	if err := widget.Pack(&buf, widget.Options{PublicURL: public, Code: opts.Code}); err != nil {
		return usagef("%v", err)
	}
	// Written whole or not at all: a temporary file renamed over the target.
	dir := filepath.Dir(opts.Output)
	f, err := os.CreateTemp(dir, ".widget-*.zip")
	if err != nil {
		return fmt.Errorf("write %s: %w", opts.Output, err)
	}
	tmp := f.Name()
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", opts.Output, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", opts.Output, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", opts.Output, err)
	}
	if err := os.Rename(tmp, opts.Output); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", opts.Output, err)
	}
	handler, _ := widget.HandlerURL(public)
	fmt.Fprintf(opts.IO.Out, "Wrote %s (%d bytes): the AI reply step calls %s\n", opts.Output, buf.Len(), handler)
	return nil
}
