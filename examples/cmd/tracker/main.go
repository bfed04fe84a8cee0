// Command tracker is prism-run's tracker example; see package tracker.
package main

import (
	"os"

	"github.com/prism-run/prism-run/examples/tracker"
)

func main() { os.Exit(tracker.Main(os.Args[1:], os.Stdout, os.Stderr)) }
