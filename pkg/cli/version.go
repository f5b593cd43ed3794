package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// The release build stamps these with -ldflags -X (.goreleaser.yaml, and
// `make build`), e.g. -X github.com/kommo-summarizer/kommo-summarizer/pkg/cli.version=1.2.0.
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

// versionLine is what --version prints.
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, commit, date, bi)
}

// formatVersion falls back, in an unstamped build (go build, go install),
// on what Go recorded: the module version, and the git commit and its time.
func formatVersion(v, c, d string, bi *debug.BuildInfo) string {
	if bi != nil && c == "none" {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version // go install ...@v1.2.0
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				c = s.Value
			case "vcs.time":
				if d == "unknown" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && c != "none" {
			c += "-dirty"
		}
	}
	return fmt.Sprintf("kommo-summarizer %s (commit %s, built %s)", v, c, d)
}

func newVersionCmd(io IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(io.Out, versionLine())
			return err
		},
	}
}
