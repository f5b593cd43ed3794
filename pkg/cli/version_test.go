package cli

import (
	"bytes"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "1.2.3", "0123abc", "2026-11-30T10:00:00Z"
	want := "kommo-summarizer 1.2.3 (commit 0123abc, built 2026-11-30T10:00:00Z)\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errb bytes.Buffer
		code := Main(args, IO{Out: &out, ErrOut: &errb})
		if code != 0 || out.String() != want || errb.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, out.String(), errb.String(), want)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "f00d"}, {Key: "vcs.time", Value: "2026-11-29T08:00:00Z"}, {Key: "vcs.modified", Value: "false"},
	}}
	dirty := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "f00d"}, {Key: "vcs.modified", Value: "true"},
	}}
	installed := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}
	for _, tc := range []struct {
		name    string
		v, c, d string
		bi      *debug.BuildInfo
		want    string
	}{
		{"unstamped, no build info", "dev", "none", "unknown", nil, "dev (commit none, built unknown)"},
		{"unstamped, nothing from git", "dev", "none", "unknown", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev (commit none, built unknown)"},
		{"unstamped, git", "dev", "none", "unknown", vcs, "dev (commit f00d, built 2026-11-29T08:00:00Z)"},
		{"unstamped, git, modified", "dev", "none", "unknown", dirty, "dev (commit f00d-dirty, built unknown)"},
		{"go install @version", "dev", "none", "unknown", installed, "v1.4.0 (commit none, built unknown)"},
		{"stamped wins", "1.2.3", "abc", "2026-11-30", vcs, "1.2.3 (commit abc, built 2026-11-30)"},
	} {
		if got := formatVersion(tc.v, tc.c, tc.d, tc.bi); got != "kommo-summarizer "+tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, "kommo-summarizer "+tc.want)
		}
	}
}

// The release config and the Makefile stamp exactly the three variables,
// by their full path: a renamed package or variable would leave a release
// saying "dev" with no error anywhere.
func TestVersionLdflags(t *testing.T) {
	re := regexp.MustCompile(`-X (\S+)=`)
	want := []string{
		"github.com/kommo-summarizer/kommo-summarizer/pkg/cli.commit",
		"github.com/kommo-summarizer/kommo-summarizer/pkg/cli.date",
		"github.com/kommo-summarizer/kommo-summarizer/pkg/cli.version",
	}
	for _, file := range []string{"../../.goreleaser.yaml", "../../Makefile"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			got = append(got, strings.ReplaceAll(m[1], "$(PKG)", "github.com/kommo-summarizer/kommo-summarizer/pkg/cli"))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s stamps %q, want %q", file, got, want)
		}
	}
}
