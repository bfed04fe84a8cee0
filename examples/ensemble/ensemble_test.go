package ensemble

import (
	"strings"
	"syscall"
	"testing"

	"github.com/prism-run/prism-run/examples/workload/workloadtest"
)

func TestWithoutHelpItDoesNotConverge(t *testing.T) {
	workloadtest.Setup(t, "1", "")
	code, lines := workloadtest.Run(t, Main, []string{"-max-iters", "8", "-pace", "0"}, nil)
	if code != 3 || !strings.Contains(lines[len(lines)-1], "no consensus") {
		t.Fatalf("exit %d, last line %q", code, lines[len(lines)-1])
	}
	if !strings.Contains(lines[7], "privacy_spent=0.8 converged=false members=12") {
		t.Errorf("round 8: %q", lines[7])
	}
}

func TestReduceEnsembleConverges(t *testing.T) {
	e := workloadtest.Setup(t, "1", "")
	code, lines := workloadtest.Run(t, Main, []string{"-max-iters", "20", "-pace", "0"}, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM iter=4 ") {
			e.AppendControl(t, "degrade", "reduce-ensemble")
			return syscall.SIGUSR2
		}
		return 0
	})
	all := strings.Join(lines, "\n")
	if code != 0 || !strings.Contains(all, "converged=true members=6") {
		t.Fatalf("exit %d:\n%s", code, all)
	}
}

func TestIncreaseTemperature(t *testing.T) {
	e := workloadtest.Setup(t, "1", "")
	_, lines := workloadtest.Run(t, Main, []string{"-max-iters", "6", "-pace", "0"}, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM iter=2 ") {
			e.AppendControl(t, "degrade", "increase-temperature")
			return syscall.SIGUSR2
		}
		return 0
	})
	if !strings.Contains(strings.Join(lines, "\n"), "temperature=1.5") {
		t.Errorf("temperature not raised:\n%s", strings.Join(lines, "\n"))
	}
}

func TestResumeIsExact(t *testing.T) {
	args := []string{"-max-iters", "12", "-pace", "0", "-outliers", "0", "-threshold", "0.999"}
	workloadtest.Setup(t, "4", "")
	_, full := workloadtest.Run(t, Main, args, nil)
	workloadtest.Setup(t, "4", "")
	_, cut := workloadtest.Run(t, Main, args, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM iter=5 ") {
			return syscall.SIGUSR1
		}
		return 0
	})
	ck := workloadtest.Checkpoint(cut)
	if ck == "" {
		t.Fatal("no checkpoint")
	}
	workloadtest.Setup(t, "4", ck)
	_, resumed := workloadtest.Run(t, Main, args, nil)
	if len(resumed) < 3 || resumed[len(resumed)-1] != full[len(full)-1] || resumed[len(resumed)-2] != full[len(full)-2] {
		t.Errorf("resumed run ends %q, uninterrupted %q", resumed[max(0, len(resumed)-2):], full[len(full)-2:])
	}
}

// Two requests that land before the child reads them are both applied.
func TestTwoDegradeRequestsAtOnce(t *testing.T) {
	e := workloadtest.Setup(t, "1", "")
	_, lines := workloadtest.Run(t, Main, []string{"-max-iters", "8", "-pace", "0"}, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM iter=2 ") {
			e.AppendControl(t, "degrade", "increase-temperature")
			e.AppendControl(t, "degrade", "reduce-ensemble")
			return syscall.SIGUSR2
		}
		return 0
	})
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, `degrade request "increase-temperature": 12 members, temperature 1.50`) ||
		!strings.Contains(all, `degrade request "reduce-ensemble": 6 members, temperature 1.50`) {
		t.Errorf("both requests not applied:\n%s", all)
	}
}
