package telemetry

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when one leaves a goroutine running
// (make validate runs every package with the race detector and this).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
