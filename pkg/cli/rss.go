package cli

import (
	"os"
	"strconv"
	"strings"
)

// peakRSSMiB is the most memory this process has held (VmHWM), for the run
// report; 0 where /proc is not there. getrusage would not do: after exec it
// still counts the parent's peak.
func peakRSSMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	return 0
}
