package cli

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
)

// runFlags runs args through the real root command with sweep and summarize
// built around runF (cli/cli's seam), so flag parsing, argument checks and
// exit codes are the program's own, and nothing runs.
func runFlags(t *testing.T, args []string, runF func(context.Context, *sweepOptions) error) (int, error) {
	t.Helper()
	var out, errb bytes.Buffer
	io := IO{Out: &out, ErrOut: &errb}
	g := &globalOptions{}
	root := newRootCmd(io, g)
	for _, c := range root.Commands() {
		if c.Name() == "sweep" || c.Name() == "summarize" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(newSweepCmd(io, g, runF), newSummarizeCmd(io, g, runF))
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	_, err := root.ExecuteC()
	if out.Len() != 0 || errb.Len() != 0 {
		t.Errorf("%v printed %q on stdout and %q on stderr: Main prints errors, runF the rest", args, out.String(), errb.String())
	}
	return exitCode(err), err
}

func TestSweepFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    sweepOptions // compared without IO and Global
		wantErr string       // "" = runF gets want
	}{
		{name: "no flags", args: "sweep", want: sweepOptions{Command: "sweep"}},
		{name: "every flag", args: "sweep --json --limit 20 --lead-ids 101,102 --force --dry-run",
			want: sweepOptions{Command: "sweep", JSON: true, Limit: 20, LeadIDs: []int64{101, 102}, Force: true, DryRun: true}},
		{name: "lead ids with spaces", args: "sweep --lead-ids= 7 , 8 ", want: sweepOptions{Command: "sweep", LeadIDs: []int64{7, 8}}},
		{name: "empty lead ids", args: "sweep --lead-ids=", want: sweepOptions{Command: "sweep"}},
		{name: "lead id not a number", args: "sweep --lead-ids 1,x", wantErr: `--lead-ids: "x" is not a lead id`},
		{name: "lead id zero", args: "sweep --lead-ids 0", wantErr: `--lead-ids: "0" is not a lead id`},
		{name: "lead id negative", args: "sweep --lead-ids=-4", wantErr: `--lead-ids: "-4" is not a lead id`},
		{name: "empty lead id", args: "sweep --lead-ids 1,,2", wantErr: `--lead-ids: "" is not a lead id`},
		{name: "negative limit", args: "sweep --limit -1", wantErr: "--limit must be 0 or more, not -1"},
		{name: "limit not a number", args: "sweep --limit many", wantErr: `invalid argument "many" for "--limit" flag`},
		{name: "unknown flag", args: "sweep --lead 5", wantErr: "unknown flag: --lead"},
		{name: "an argument", args: "sweep 101", wantErr: `this command takes no arguments: "101"`},
		{name: "summarize", args: "summarize --lead 5", want: sweepOptions{Command: "summarize", LeadIDs: []int64{5}}},
		{name: "summarize every flag", args: "summarize --lead 5 --force --dry-run --json",
			want: sweepOptions{Command: "summarize", LeadIDs: []int64{5}, Force: true, DryRun: true, JSON: true}},
		{name: "summarize without a lead", args: "summarize", wantErr: "--lead: a lead id is required"},
		{name: "summarize negative lead", args: "summarize --lead -3", wantErr: "--lead: a lead id is required"},
		{name: "summarize lead not a number", args: "summarize --lead x", wantErr: `invalid argument "x" for "--lead" flag`},
		{name: "summarize has no --lead-ids", args: "summarize --lead-ids 5", wantErr: "unknown flag: --lead-ids"},
		{name: "summarize has no --limit", args: "summarize --lead 5 --limit 1", wantErr: "unknown flag: --limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := strings.Fields(tt.args)
			if i := strings.Index(tt.args, "--lead-ids="); i >= 0 { // keep the value's spaces
				args = append(strings.Fields(tt.args[:i]), tt.args[i:])
			}
			var got *sweepOptions
			code, err := runFlags(t, args, func(_ context.Context, o *sweepOptions) error {
				got = o
				return nil
			})
			if tt.wantErr != "" {
				if code != ExitUsage || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("exit %d, error %v; want exit %d and an error with %q", code, err, ExitUsage, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("runF ran with %+v", got)
				}
				return
			}
			if code != ExitOK || got == nil {
				t.Fatalf("exit %d, error %v; runF ran: %v", code, err, got != nil)
			}
			got.IO, got.Global = IO{}, nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("options\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

// Global flags reach the command's options.
func TestSweepGlobalFlags(t *testing.T) {
	var got *sweepOptions
	code, err := runFlags(t, []string{"--config", "c.yaml", "sweep", "-q", "--log-level", "debug", "--log-format", "text"},
		func(_ context.Context, o *sweepOptions) error { got = o; return nil })
	if code != ExitOK || got == nil {
		t.Fatalf("exit %d, %v", code, err)
	}
	if g := *got.Global; g != (globalOptions{ConfigPath: "c.yaml", LogLevel: "debug", LogFormat: "text", Quiet: true}) {
		t.Errorf("global options %+v", g)
	}
}
