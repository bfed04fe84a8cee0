// Command ensemble is prism-run's ensemble example; see package ensemble.
package main

import (
	"os"

	"github.com/prism-run/prism-run/examples/ensemble"
)

func main() { os.Exit(ensemble.Main(os.Args[1:], os.Stdout, os.Stderr)) }
