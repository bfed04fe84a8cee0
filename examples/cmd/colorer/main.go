// Command colorer is prism-run's colorer example; see package colorer.
package main

import (
	"os"

	"github.com/prism-run/prism-run/examples/colorer"
)

func main() { os.Exit(colorer.Main(os.Args[1:], os.Stdout, os.Stderr)) }
