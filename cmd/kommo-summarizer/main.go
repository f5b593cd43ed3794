// Command kommo-summarizer writes an AI summary of each Kommo deal's chat on
// the deal card. See README.md.
package main

import (
	"os"

	"github.com/kommo-summarizer/kommo-summarizer/pkg/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.System()))
}
