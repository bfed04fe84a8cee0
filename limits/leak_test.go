package limits

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when one leaves a goroutine running
// (make validate runs every package with the race detector and this). Run
// as `TEST __prism-watch ...` the test binary is the watchdog, as
// prism-run is (TestWatchdogDoneWaits).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == WatchArg {
		os.Exit(WatchMain(os.Args[2:], os.Stderr))
	}
	goleak.VerifyTestMain(m)
}
