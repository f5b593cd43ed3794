package main

import (
	"strings"
	"testing"
)

// The test binary stands in for the program (see TestMain): what it prints
// must be the program's output alone, with no PASS or ok from the testing
// package, and its exit code the program's own.
func TestTheProgramAlone(t *testing.T) {
	w := newWorld(t, fastFakes, fast)
	res := w.run("status")
	want := "No runs recorded in " + w.cfg["store"]["path"].(string) + " yet.\n"
	if res.code != 0 || res.stdout != want || res.stderr != "" {
		t.Fatalf("status: exit %d\nstdout %q\nwant   %q\nstderr %q", res.code, res.stdout, want, res.stderr)
	}
	res = w.run("status", "--runs", "x")
	if res.code != 2 || res.stdout != "" || strings.Contains(res.stderr, "PASS") || strings.Contains(res.stderr, "FAIL") {
		t.Fatalf("status --runs x: exit %d\nstdout %q\nstderr %q", res.code, res.stdout, res.stderr)
	}
}
