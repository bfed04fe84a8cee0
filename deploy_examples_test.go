package main

// The deployment examples (examples/k8s, examples/ci) held to prism-run:
// every prism-run command line in them passes `prism-run --dry-run` (this
// test binary is prism-run, on PATH through testscript.Main in TestMain),
// the Kubernetes Job turns the pod's SIGTERM into a checkpoint (--on-term
// checkpoint-stop) and its grace period covers what prism-run then does,
// its pod failure policy retries 75, the Dockerfile builds as the
// Makefile's build target does, and the Job's command line, run by a real
// prism-run and SIGTERMed, exits 75 and resumes in the next "pod". The
// YAML files are read by yamlSubset below: the block mappings, sequences,
// flow lists and block scalars these files use, not YAML at large (no YAML
// module is a requirement of this module, and these checks are not worth
// one).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/shlex"
)

// k8sJob is job.yaml's Job, its pod spec, its one container with the
// container's args, and the PVC.
type k8sJob struct {
	job, pod, c, pvc map[string]any
	args             []string
	mount            string // the container's first volume mount
}

func readK8sJob(t *testing.T) k8sJob {
	t.Helper()
	docs := readYAMLDocs(t, "examples/k8s/job.yaml")
	var j k8sJob
	for _, d := range docs {
		switch yget(d, "kind") {
		case "Job":
			j.job = ymap(d)
		case "PersistentVolumeClaim":
			j.pvc = ymap(d)
		}
	}
	if j.job == nil || j.pvc == nil {
		t.Fatalf("job.yaml: want a Job and a PersistentVolumeClaim, got %d documents", len(docs))
	}
	j.pod = ymap(yget(j.job, "spec", "template", "spec"))
	containers := ylist(yget(j.pod, "containers"))
	if len(containers) != 1 {
		t.Fatalf("job.yaml: want one container, got %d", len(containers))
	}
	j.c = ymap(containers[0])
	j.args = ystrings(t, yget(j.c, "args"))
	j.mount, _ = yget(j.c, "volumeMounts", 0, "mountPath").(string)
	if j.mount == "" {
		t.Fatalf("job.yaml: the container mounts no volume")
	}
	return j
}

func TestDeployExamplesKubernetes(t *testing.T) {
	j := readK8sJob(t)
	job, pvc, pod, c, args, mount := j.job, j.pvc, j.pod, j.c, j.args, j.mount
	if v := yget(job, "apiVersion"); v != "batch/v1" {
		t.Errorf("job.yaml: Job apiVersion %v, want batch/v1", v)
	}
	if c["command"] != nil {
		t.Errorf("job.yaml: the container sets command: the image's ENTRYPOINT (prism-run, PID 1) should run, with args")
	}
	flags := prismFlags(args)

	// The checkpoints and the state must be on the claim, or --resume
	// latest finds nothing in the next pod.
	claim := yget(pod, "volumes", 0, "persistentVolumeClaim", "claimName")
	if claim == nil || claim != yget(pvc, "metadata", "name") {
		t.Errorf("job.yaml: the pod's volume claims %v, the PVC is %v", claim, yget(pvc, "metadata", "name"))
	}
	stateDir := stateDirOf(flags)
	for _, f := range []string{"--checkpoint-dir", "--report"} {
		if !strings.HasPrefix(flags[f]+"/", mount+"/") {
			t.Errorf("job.yaml: %s %q is not on the volume mounted at %q", f, flags[f], mount)
		}
	}
	if !strings.HasPrefix(stateDir, mount+"/") || flags["--resume"] != "latest" {
		t.Errorf("job.yaml: want --resume latest and the state (%q) on the volume (%q)", stateDir, mount)
	}

	// The command line as prism-run reads it, with the volume in a
	// temporary folder.
	dir := t.TempDir()
	local := relocate(args, mount, filepath.Join(dir, "ckpt"))
	if err := os.MkdirAll(filepath.Join(dir, "ckpt"), 0o755); err != nil {
		t.Fatal(err)
	}
	plan := prismDryRun(t, dir, "job.yaml", local)
	checkChildArgs(t, dir, "job.yaml", plan.command)

	// The pod's SIGTERM (deletion, eviction, preemption) is a checkpoint,
	// then a stop. The grace period covers it: the checkpoint (up to the
	// checkpoint timeout), the child's stop (kill-after), what it left
	// behind (another kill-after), and a margin for the report, the
	// termination message and the state. The timings are the ones
	// prism-run resolved. A preStop hook would run first, inside the same
	// grace period, which this sum does not count.
	if on := flags["--on-term"]; on != "checkpoint-stop" {
		t.Errorf("job.yaml: --on-term %q, want checkpoint-stop: the pod's SIGTERM should leave a checkpoint behind", on)
	}
	const margin = 5 * time.Second
	grace := yint(t, "terminationGracePeriodSeconds", yget(pod, "terminationGracePeriodSeconds"))
	need := plan.checkpointTimeout + 2*plan.killAfter + margin
	if time.Duration(grace)*time.Second < need {
		t.Errorf("job.yaml: terminationGracePeriodSeconds %d < checkpoint_timeout %s + 2 x kill_after %s + a margin of %s = %s",
			grace, plan.checkpointTimeout, plan.killAfter, margin, need)
	}
	if h := yget(c, "lifecycle", "preStop"); h != nil {
		t.Errorf("job.yaml: a preStop hook (%v): --on-term checkpoint-stop checkpoints on SIGTERM, and a hook's time is not in the grace period's sum", h)
	}
	if df := readDockerfile(t); !slices.Equal(df.entrypoint, []string{"/usr/local/bin/prism-run"}) {
		t.Errorf("Dockerfile: ENTRYPOINT %q, want the exec form [\"/usr/local/bin/prism-run\"] (PID 1, no shell)", df.entrypoint)
	}

	checkPodFailurePolicy(t, job, pod, yget(c, "name"))
	checkMetricsPort(t, flags["--metrics-listen"], c, ymap(yget(job, "spec", "template", "metadata", "annotations")))
	if p := yget(c, "terminationMessagePath"); p != "/dev/termination-log" {
		t.Errorf("job.yaml: terminationMessagePath %v: prism-run writes /dev/termination-log (its --termination-log default)", p)
	}
	if _, set := flags["--termination-log"]; set {
		t.Errorf("job.yaml: --termination-log is set; the default is the kubelet's file")
	}
	if p := yget(c, "terminationMessagePolicy"); p != "FallbackToLogsOnError" {
		t.Errorf("job.yaml: terminationMessagePolicy %v, want FallbackToLogsOnError", p)
	}
	if g := yget(c, "resources", "limits", "nvidia.com/gpu"); g != "1" {
		t.Errorf("job.yaml: limits nvidia.com/gpu = %v, want 1", g)
	}
}

func checkPodFailurePolicy(t *testing.T, job, pod map[string]any, container any) {
	t.Helper()
	if r := yget(pod, "restartPolicy"); r != "Never" {
		t.Errorf("job.yaml: restartPolicy %v: a podFailurePolicy needs Never", r)
	}
	if r := yget(job, "spec", "podReplacementPolicy"); r != nil && r != "Failed" {
		t.Errorf("job.yaml: podReplacementPolicy %v: with a podFailurePolicy only Failed is allowed", r)
	}
	rules := ylist(yget(job, "spec", "podFailurePolicy", "rules"))
	// The action of the first exit-code rule that matches code, as the
	// Job controller decides it.
	action := func(code int) string {
		for _, r := range rules {
			on := ymap(yget(r, "onExitCodes"))
			if on == nil {
				continue
			}
			if on["containerName"] != nil && on["containerName"] != container {
				t.Errorf("job.yaml: a pod failure rule names container %v, the container is %v", on["containerName"], container)
			}
			in := slices.Contains(ylist(on["values"]), any(strconv.Itoa(code)))
			if (on["operator"] == "In") == in {
				s, _ := yget(r, "action").(string)
				return s
			}
		}
		return "Count"
	}
	if a := action(75); a != "Ignore" {
		t.Errorf("job.yaml: exit 75 (resumable) gets %s, want Ignore", a)
	}
	for _, code := range []int{125, 126, 127} {
		if a := action(code); a != "FailJob" {
			t.Errorf("job.yaml: exit %d gets %s, want FailJob", code, a)
		}
	}
	disruption := false
	for _, r := range rules {
		for _, cond := range ylist(yget(r, "onPodConditions")) {
			disruption = disruption || (yget(cond, "type") == "DisruptionTarget" && yget(r, "action") == "Ignore")
		}
	}
	if !disruption {
		t.Errorf("job.yaml: want a rule that ignores the DisruptionTarget condition (eviction, preemption)")
	}
}

func checkMetricsPort(t *testing.T, listen string, c, annotations map[string]any) {
	t.Helper()
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host == "" || net.ParseIP(host) == nil || net.ParseIP(host).IsLoopback() {
		t.Errorf("job.yaml: --metrics-listen %q: a pod's metrics need an address outside loopback, written out (0.0.0.0:PORT)", listen)
	}
	found := false
	for _, p := range ylist(yget(c, "ports")) {
		found = found || (yget(p, "name") == "metrics" && yget(p, "containerPort") == port)
	}
	if !found {
		t.Errorf("job.yaml: no container port named metrics with containerPort %s (--metrics-listen %s)", port, listen)
	}
	if annotations["prometheus.io/port"] != port || annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("job.yaml: prometheus.io annotations %v, want scrape \"true\" and port %q", annotations, port)
	}
}

func TestDeployExamplesDockerfile(t *testing.T) {
	df := readDockerfile(t)
	mk := readMakefile(t)
	build := df.goBuild(t, ".")
	if got, want := flagNames(build), flagNames(mk.build); !slices.Equal(got, want) {
		t.Errorf("Dockerfile: go build of prism-run has flags %q, the Makefile's build %q", got, want)
	}
	if got, want := flagValue(build, "-tags"), flagValue(mk.build, "-tags"); got != want || want == "" {
		t.Errorf("Dockerfile: -tags %q, the Makefile's %q", got, want)
	}
	if got, want := ldflagsShape(flagValue(build, "-ldflags")), ldflagsShape(flagValue(mk.build, "-ldflags")); got != want {
		t.Errorf("Dockerfile: -ldflags %q, the Makefile's %q", got, want)
	}
	if got, want := df.env["CGO_CFLAGS"], mk.vars["CGO_CFLAGS"]; got != want {
		t.Errorf("Dockerfile: CGO_CFLAGS %q, the Makefile's %q", got, want)
	}
	if df.env["CGO_ENABLED"] != "1" {
		t.Errorf("Dockerfile: CGO_ENABLED %q, want 1 (go-nvml needs cgo)", df.env["CGO_ENABLED"])
	}
	examples := df.goBuild(t, "./examples/cmd/colorer")
	if got, want := flagNames(examples), flagNames(mk.examples); !slices.Equal(got, want) {
		t.Errorf("Dockerfile: go build of the colorer has flags %q, the Makefile's examples %q", got, want)
	}
	// What the build stage writes is what the runtime stage runs: the
	// ENTRYPOINT, and the colorer where PATH finds it (job.yaml and CMD
	// name it bare; /usr/local/bin is on the Debian image's PATH).
	for _, bin := range []struct{ out, want string }{
		{flagValue(build, "-o"), "/usr/local/bin/prism-run"},
		{flagValue(examples, "-o"), "/usr/local/bin/colorer"},
	} {
		copied := false
		for _, c := range df.copies {
			dest := c[len(c)-1]
			copied = copied || (slices.Contains(c, "--from=build") && slices.Contains(c[:len(c)-1], bin.out) &&
				strings.HasSuffix(dest, "/") && dest+path.Base(bin.out) == bin.want)
		}
		if !copied {
			t.Errorf("Dockerfile: no COPY --from=build of %s (go build -o) to %s; COPY lines: %q", bin.out, bin.want, df.copies)
		}
	}
	goMinor := goModMinor(t)
	if !strings.HasPrefix(df.buildImage, "golang:"+goMinor+"-") {
		t.Errorf("Dockerfile: builds on %q, go.mod wants Go %s", df.buildImage, goMinor)
	}
	gl := readYAMLDocs(t, "examples/ci/gitlab-ci.yml")[0]
	if img, _ := yget(gl, "prism-run", "image").(string); !strings.HasPrefix(img, "golang:"+goMinor+"-") {
		t.Errorf("gitlab-ci.yml: image %q, go.mod wants Go %s", img, goMinor)
	}
	// The image's default arguments run as they are.
	dir := t.TempDir()
	args := relocate(df.cmd, "/tmp", dir)
	checkChildArgs(t, dir, "Dockerfile CMD", prismDryRun(t, dir, "Dockerfile CMD", args).command)
}

func TestDeployExamplesCI(t *testing.T) {
	gh := readYAMLDocs(t, "examples/ci/github-actions.yml")[0]
	for name, j := range ymap(yget(gh, "jobs")) {
		steps := ylist(yget(j, "steps"))
		var lines [][]string
		uses := map[string]map[string]any{}
		for _, s := range steps {
			if run, ok := yget(s, "run").(string); ok {
				lines = append(lines, prismCommandLines(t, run)...)
			}
			if u, ok := yget(s, "uses").(string); ok {
				uses[strings.Split(u, "@")[0]] = ymap(s)
			}
		}
		if len(lines) != 1 {
			t.Fatalf("github-actions.yml: job %s: want one prism-run command line, got %q", name, lines)
		}
		flags := prismFlags(lines[0][1:])
		if _, ok := flags["--github-summary"]; !ok {
			t.Errorf("github-actions.yml: the prism-run step has no --github-summary")
		}
		checkCICommand(t, "github-actions.yml", lines[0])
		up := uses["actions/upload-artifact"]
		if yget(up, "if") != "always()" {
			t.Errorf("github-actions.yml: upload-artifact step without if: always()")
		}
		paths, _ := yget(up, "with", "path").(string)
		for _, f := range []string{flags["--junit"], flags["--report"]} {
			if !slices.Contains(strings.Fields(paths), f) {
				t.Errorf("github-actions.yml: upload-artifact does not upload %q (path: %q)", f, paths)
			}
		}
		report := uses["mikepenz/action-junit-report"]
		if p, _ := yget(report, "with", "report_paths").(string); !globMatches(p, flags["--junit"]) || yget(report, "if") != "always()" {
			t.Errorf("github-actions.yml: the test report step reads %q, prism-run writes %q; want it with if: always()", p, flags["--junit"])
		}
		if v := yget(uses["actions/setup-go"], "with", "go-version-file"); v != "go.mod" {
			t.Errorf("github-actions.yml: setup-go go-version-file %v, want go.mod", v)
		}
	}

	gl := readYAMLDocs(t, "examples/ci/gitlab-ci.yml")[0]
	job := ymap(yget(gl, "prism-run"))
	var lines [][]string
	for _, s := range ylist(yget(job, "script")) {
		str, _ := s.(string)
		lines = append(lines, prismCommandLines(t, str)...)
	}
	if len(lines) != 1 {
		t.Fatalf("gitlab-ci.yml: want one prism-run command line, got %q", lines)
	}
	flags := prismFlags(lines[0][1:])
	checkCICommand(t, "gitlab-ci.yml", lines[0])
	if yget(job, "artifacts", "when") != "always" || yget(job, "artifacts", "reports", "junit") != flags["--junit"] {
		t.Errorf("gitlab-ci.yml: want artifacts when: always and reports: junit: %q", flags["--junit"])
	}
	paths := ylist(yget(job, "artifacts", "paths"))
	for _, f := range []string{flags["--junit"], flags["--report"]} {
		if !slices.Contains(paths, any(f)) {
			t.Errorf("gitlab-ci.yml: artifacts paths %q lack %q", paths, f)
		}
	}
}

// checkCICommand runs a CI command line (bin/prism-run ... -- bin/colorer
// ..., from the repository root after make build examples) through
// --dry-run, in a folder where bin/ holds this test's prism-run and
// colorer.
func checkCICommand(t *testing.T, file string, line []string) {
	t.Helper()
	flags := prismFlags(line[1:])
	if flags["--junit"] == "" || flags["--report"] == "" {
		t.Errorf("%s: want --junit FILE and --report FILE in %q", file, line)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prism-run", "colorer"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(dir, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	if line[0] != "bin/prism-run" {
		t.Errorf("%s: the command line starts with %q; make build leaves bin/prism-run", file, line[0])
	}
	plan := prismDryRun(t, dir, file, line[1:])
	checkChildArgs(t, dir, file, plan.command)
}

// Two pods of the Job, played by the real prism-run (this test binary)
// with job.yaml's command line: the volume in a temporary folder, the
// metrics on a free loopback port, a --termination-log file of its own (the
// default, /dev/termination-log, is not here) and a smaller graph (-n 100
// appended to the colorer's arguments: the last -n wins). The first pod is
// SIGTERMed, as the kubelet does on deletion, eviction or preemption, once
// the colorer is up, and must end as a checkpointed stop: exit 75, and the
// termination message and the state name the acknowledged checkpoint. The
// second, the same command line, resumes from that checkpoint (and stops
// the same way).
func TestDeployExamplesPodStop(t *testing.T) {
	j := readK8sJob(t)
	dir := t.TempDir()
	vol, term := filepath.Join(dir, "ckpt"), filepath.Join(dir, "termination-log")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	args := relocate(j.args, j.mount, vol)
	args = setPrismFlag(args, "--metrics-listen", "127.0.0.1:0")
	args = setPrismFlag(args, "--termination-log", term)
	args = setPrismFlag(args, "--no-status", "")
	args = append(args, "-n", "100")
	flags := prismFlags(args)
	if flags["--on-term"] != "checkpoint-stop" {
		t.Fatalf("job.yaml: want --on-term checkpoint-stop in %q", j.args)
	}

	first := podStop(t, dir, args, "PRISM iter=")
	var st struct {
		Checkpoints []struct{ Path string } `json:"checkpoints"`
	}
	stateFile := filepath.Join(stateDirOf(flags), "state.json")
	b, err := os.ReadFile(stateFile)
	if err != nil || json.Unmarshal(b, &st) != nil || len(st.Checkpoints) != 1 {
		t.Fatalf("after the first pod the state %s holds %s (%v), want one checkpoint; prism-run's output:\n%s", stateFile, b, err, first)
	}
	ck := st.Checkpoints[0].Path
	if !strings.HasPrefix(ck, vol+"/") {
		t.Errorf("the acknowledged checkpoint %s is not on the volume %s", ck, vol)
	}
	if _, err := os.Stat(ck); err != nil {
		t.Errorf("the acknowledged checkpoint: %v", err)
	}
	msg, _ := os.ReadFile(term)
	if !strings.HasPrefix(string(msg), "prism-run: exit 75 ") || !strings.Contains(string(msg), "checkpoint acknowledged") ||
		!strings.HasSuffix(strings.TrimSpace(string(msg)), "last checkpoint "+ck) {
		t.Errorf("termination message %q, want exit 75, the checkpoint acknowledged, and the last checkpoint %s", msg, ck)
	}
	if _, err := os.Stat(flags["--report"]); err != nil {
		t.Errorf("the report on the volume: %v", err)
	}
	// The next pod: same command line, --resume latest.
	podStop(t, dir, args, "resumed from "+ck+" ")
}

// stateDirOf is prism-run's --state-dir: the flag, or its default.
func stateDirOf(flags map[string]string) string {
	if d := flags["--state-dir"]; d != "" {
		return d
	}
	return flags["--checkpoint-dir"] + "/.prism-run"
}

// podStop runs prism-run ARGS in dir until its output holds ready (the
// colorer handles SIGUSR1 from its first marker on: a request that came
// earlier would be lost), then sends it SIGTERM and wants exit 75. It
// returns the output.
func podStop(t *testing.T, dir string, args []string, ready string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := &syncBuffer{}
	cmd := exec.CommandContext(ctx, "prism-run", args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, deployEnv(dir), out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{}) // closed once waitErr is set
	go func() { waitErr = cmd.Wait(); close(done) }()
	defer func() { _ = cmd.Process.Kill(); <-done }()
	for end := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), ready); {
		select {
		case <-done:
			t.Fatalf("prism-run ended (%v) before %q; output:\n%s", waitErr, ready, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(end) {
			t.Fatalf("no %q after 10s; prism-run's output:\n%s", ready, out.String())
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != 75 {
		t.Fatalf("SIGTERM, then prism-run ended with %v after %s, want exit 75 (checkpoint acknowledged); output:\n%s",
			waitErr, time.Since(start), out.String())
	}
	t.Logf("SIGTERM to exit 75: %s", time.Since(start).Round(time.Millisecond))
	return out.String()
}

// setPrismFlag gives prism-run's flag name the value v ("" for a boolean)
// in args: in place where it is set before "--", else added before "--".
func setPrismFlag(args []string, name, v string) []string {
	end := slices.Index(args, "--")
	if end < 0 {
		end = len(args)
	}
	for i := 0; i < end; i++ {
		switch {
		case args[i] == name && v != "" && i+1 < end:
			return slices.Concat(args[:i+1], []string{v}, args[i+2:])
		case args[i] == name && v == "", strings.HasPrefix(args[i], name+"="):
			return slices.Concat(args[:i], []string{flagWord(name, v)}, args[i+1:])
		}
	}
	return slices.Concat(args[:end], []string{flagWord(name, v)}, args[end:])
}

func flagWord(name, v string) string {
	if v == "" {
		return name
	}
	return name + "=" + v
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ---- prism-run and the colorer ------------------------------------------

type dryRunPlan struct {
	killAfter, checkpointTimeout time.Duration
	command                      []string // the "would run" line's words
}

var timingLine = regexp.MustCompile(`(?m)^#\s+timing (kill_after|checkpoint_timeout) = (\S+)$`)

// prismDryRun runs prism-run --dry-run ARGS in dir and wants exit 0: the
// flags parse, their values are good, the command is found.
func prismDryRun(t *testing.T, dir, what string, args []string) dryRunPlan {
	t.Helper()
	cmd := exec.Command("prism-run", append([]string{"--dry-run"}, args...)...)
	cmd.Dir, cmd.Env = dir, deployEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: prism-run --dry-run %q: %v\n%s", what, args, err, out)
	}
	var plan dryRunPlan
	for _, m := range timingLine.FindAllStringSubmatch(string(out), -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("%s: dry run: %q: %v", what, m[0], err)
		}
		if m[1] == "kill_after" {
			plan.killAfter = d
		} else {
			plan.checkpointTimeout = d
		}
	}
	if plan.checkpointTimeout == 0 {
		t.Fatalf("%s: the dry run shows no timing checkpoint_timeout line:\n%s", what, out)
	}
	if i := slices.Index(args, "--"); i >= 0 {
		plan.command = args[i+1:]
	}
	return plan
}

// checkChildArgs runs the colorer with the example's arguments and one
// step (-max-iters 1 last: the last value of a flag wins): a renamed flag
// of the colorer fails here.
func checkChildArgs(t *testing.T, dir, what string, command []string) {
	t.Helper()
	if len(command) == 0 || path.Base(command[0]) != "colorer" {
		t.Fatalf("%s: the command is %q, want the colorer", what, command)
	}
	cmd := exec.Command("colorer", append(slices.Clone(command[1:]), "-max-iters", "1")...)
	cmd.Dir, cmd.Env = dir, deployEnv(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: colorer %q: %v\n%s", what, command[1:], err, out)
	}
}

// deployEnv is the environment without prism-run's own variables (a
// developer's PRISM_TIMEOUT would change the plan), with a step summary
// file for --github-summary, and without the race detector's second at
// each exit (as the scripts run).
func deployEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PRISM_") && !strings.HasPrefix(kv, "GITHUB_STEP_SUMMARY=") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	summary := filepath.Join(dir, "step-summary.md")
	_ = os.WriteFile(summary, nil, 0o644)
	return append(env, "GITHUB_STEP_SUMMARY="+summary, "TMPDIR="+dir, "GORACE=atexit_sleep_ms=0")
}

// prismFlags maps each flag before "--" to its value ("" for a boolean;
// --flag=value too).
func prismFlags(args []string) map[string]string {
	flags := map[string]string{}
	for i := 0; i < len(args) && args[i] != "--"; i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok {
			flags[k] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			flags[a] = args[i+1]
			i++
		} else {
			flags[a] = ""
		}
	}
	return flags
}

// relocate moves every argument under from (a path of the container) to
// the same place under to.
func relocate(args []string, from, to string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == from || strings.HasPrefix(a, from+"/") {
			out[i] = to + strings.TrimPrefix(a, from)
		}
	}
	return out
}

// prismCommandLines finds the prism-run command lines in a shell script
// (a run: or script: entry), continuation lines joined.
func prismCommandLines(t *testing.T, script string) [][]string {
	t.Helper()
	var out [][]string
	for _, l := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		words, err := shlex.Split(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if len(words) > 0 && path.Base(words[0]) == "prism-run" {
			out = append(out, words)
		}
	}
	return out
}

func globMatches(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// ---- Dockerfile, Makefile, go.mod --------------------------------------

type dockerfile struct {
	buildImage string            // the first FROM
	runs       []string          // RUN lines, continuations joined
	env        map[string]string // ENV
	copies     [][]string        // COPY's words, the destination last
	entrypoint []string
	cmd        []string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	df := dockerfile{env: map[string]string{}}
	for _, ins := range logicalLines(t, "examples/k8s/Dockerfile", "#") {
		op, rest, _ := strings.Cut(ins, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(op) {
		case "FROM":
			if df.buildImage == "" {
				df.buildImage = strings.Fields(rest)[0]
			}
		case "RUN":
			df.runs = append(df.runs, rest)
		case "ENV":
			words, err := shlex.Split(rest)
			if err != nil {
				t.Fatalf("Dockerfile: ENV %s: %v", rest, err)
			}
			for _, w := range words {
				k, v, _ := strings.Cut(w, "=")
				df.env[k] = v
			}
		case "COPY":
			df.copies = append(df.copies, strings.Fields(rest))
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("Dockerfile: %s %s: want the exec (JSON) form: %v", op, rest, err)
			}
			if op == "CMD" {
				df.cmd = v
			} else {
				df.entrypoint = v
			}
		}
	}
	return df
}

// goBuild is the `go build` of pkg among the RUN lines.
func (df dockerfile) goBuild(t *testing.T, pkg string) []string {
	t.Helper()
	for _, run := range df.runs {
		for _, part := range strings.Split(run, "&&") {
			words, err := shlex.Split(part)
			if err != nil {
				t.Fatalf("Dockerfile: RUN %s: %v", part, err)
			}
			if len(words) > 2 && words[0] == "go" && words[1] == "build" && words[len(words)-1] == pkg {
				return words[1:]
			}
		}
	}
	t.Fatalf("Dockerfile: no go build of %s", pkg)
	return nil
}

type makefile struct {
	vars            map[string]string
	build, examples []string // the go build commands of those targets, $(VAR)s expanded
}

func readMakefile(t *testing.T) makefile {
	t.Helper()
	mk := makefile{vars: map[string]string{}}
	assign := regexp.MustCompile(`^(?:export\s+)?([A-Z_]+)\s*[?:]?=\s*(.*)$`)
	target := ""
	for _, l := range logicalLines(t, "Makefile", "#") {
		if m := assign.FindStringSubmatch(l); m != nil {
			mk.vars[m[1]] = strings.TrimSpace(m[2])
			continue
		}
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "\t") && !strings.Contains(name, " ") {
			target = name
			continue
		}
		if !strings.HasPrefix(l, "\t$(GO) build") || (target != "build" && target != "examples") {
			continue
		}
		expanded := regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(strings.TrimSpace(l), func(s string) string {
			if v, ok := mk.vars[s[2:len(s)-1]]; ok && !strings.HasPrefix(v, "$(shell") {
				return v
			}
			return s
		})
		words, err := shlex.Split(expanded)
		if err != nil {
			t.Fatalf("Makefile: %s: %v", l, err)
		}
		if target == "build" {
			mk.build = words[1:]
		} else {
			mk.examples = words[1:]
		}
	}
	if mk.build == nil || mk.examples == nil {
		t.Fatalf("Makefile: no go build in the build and examples targets")
	}
	return mk
}

// logicalLines reads a file's lines with backslash continuations joined
// and whole-line comments dropped.
func logicalLines(t *testing.T, file, comment string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), comment) && cur == "" {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	return out
}

// flagNames are the flags of a go build command, sorted, without -o.
func flagNames(words []string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, "-") && w != "-o" {
			name, _, _ := strings.Cut(w, "=")
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func flagValue(words []string, name string) string {
	for i, w := range words {
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return v
		}
		if w == name && i+1 < len(words) {
			return words[i+1]
		}
	}
	return ""
}

// ldflagsShape is -ldflags with the values of -X left out: the same
// flags and the same variables stamped.
func ldflagsShape(s string) string {
	f := strings.Fields(s)
	for i := range f {
		if i > 0 && f[i-1] == "-X" {
			f[i], _, _ = strings.Cut(f[i], "=")
		}
	}
	return strings.Join(f, " ")
}

// goModMinor is go.mod's Go version as MAJOR.MINOR (an image tag).
func goModMinor(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod: no go line")
	}
	return string(m[1])
}

// ---- a YAML subset ------------------------------------------------------

func readYAMLDocs(t *testing.T, file string) []any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := yamlSubset(string(b))
	if err != nil || len(docs) == 0 {
		t.Fatalf("%s: %v (%d documents)", file, err, len(docs))
	}
	return docs
}

type yamlLine struct {
	n      int // line number, from 1
	indent int
	text   string // without the indentation and trailing blanks
}

type yamlParser struct {
	lines []yamlLine
	i     int
}

// yamlSubset reads what these examples use: block mappings and
// sequences, "---" between documents, [a, b] flow lists, quoted and plain
// scalars (all strings), |, |-, > and >- block scalars, comments. Anything
// else is an error, never a guess.
func yamlSubset(src string) ([]any, error) {
	var docs []any
	p := &yamlParser{}
	flush := func() error {
		p.i = 0
		p.skip()
		if p.i < len(p.lines) {
			v, err := p.node(p.lines[p.i].indent)
			if err == nil {
				if p.skip(); p.i < len(p.lines) {
					err = fmt.Errorf("line %d: unexpected %q", p.lines[p.i].n, p.lines[p.i].text)
				}
			}
			if err != nil {
				return err
			}
			docs = append(docs, v)
		}
		p.lines = nil
		return nil
	}
	for n, l := range strings.Split(src, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "---" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		text := strings.TrimLeft(l, " ")
		p.lines = append(p.lines, yamlLine{n: n + 1, indent: len(l) - len(text), text: text})
	}
	return docs, flush()
}

// skip passes blank and comment lines.
func (p *yamlParser) skip() {
	for p.i < len(p.lines) && (p.lines[p.i].text == "" || strings.HasPrefix(p.lines[p.i].text, "#")) {
		p.i++
	}
}

func isItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

func (p *yamlParser) node(indent int) (any, error) {
	if isItem(p.lines[p.i].text) {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

func (p *yamlParser) sequence(indent int) ([]any, error) {
	var out []any
	for p.skip(); p.i < len(p.lines) && p.lines[p.i].indent == indent && isItem(p.lines[p.i].text); p.skip() {
		l := p.lines[p.i]
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		var v any
		var err error
		switch _, _, isKey := splitYAMLKey(rest); {
		case rest == "":
			p.i++
			v, err = p.nested(indent, false)
		case isKey: // a mapping that starts on the item's line
			off := len(l.text) - len(rest)
			p.lines[p.i] = yamlLine{n: l.n, indent: indent + off, text: rest}
			v, err = p.mapping(indent + off)
		default:
			p.i++
			v, err = p.value(rest, indent, l.n)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (map[string]any, error) {
	m := map[string]any{}
	for p.skip(); p.i < len(p.lines) && p.lines[p.i].indent >= indent; p.skip() {
		l := p.lines[p.i]
		if l.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", l.n)
		}
		if isItem(l.text) {
			break // the parent's sequence goes on
		}
		k, rest, ok := splitYAMLKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY: VALUE, got %q", l.n, l.text)
		}
		p.i++
		var v any
		var err error
		if rest == "" {
			v, err = p.nested(indent, true)
		} else {
			v, err = p.value(rest, indent, l.n)
		}
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// nested is the block under a key or an empty item: deeper lines, or (for
// a key) a sequence at the key's own indentation; none is "".
func (p *yamlParser) nested(indent int, key bool) (any, error) {
	p.skip()
	if p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent > indent || (key && l.indent == indent && isItem(l.text)) {
			return p.node(l.indent)
		}
	}
	return "", nil
}

// value is what follows "KEY: " or "- " on the line: a block scalar
// (taking the deeper lines), a flow list or a scalar.
func (p *yamlParser) value(s string, indent, n int) (any, error) {
	switch s {
	case "|", "|-", ">", ">-":
		return p.blockScalar(s, indent), nil
	}
	if strings.HasPrefix(s, "[") {
		end := strings.LastIndex(s, "]")
		if end < 0 || strings.TrimSpace(stripComment(s[end+1:])) != "" {
			return nil, fmt.Errorf("line %d: a flow list on one line, please: %q", n, s)
		}
		var out []any
		for _, item := range strings.Split(s[1:end], ",") {
			if item = strings.TrimSpace(item); item != "" {
				v, err := yamlScalar(item, n)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
		}
		return out, nil
	}
	if strings.HasPrefix(s, "{") || strings.HasPrefix(s, "&") || strings.HasPrefix(s, "*") || strings.HasPrefix(s, "!") {
		return nil, fmt.Errorf("line %d: %q is past this YAML subset", n, s)
	}
	return yamlScalar(s, n)
}

func (p *yamlParser) blockScalar(style string, indent int) string {
	var lines []yamlLine
	for ; p.i < len(p.lines) && (p.lines[p.i].text == "" || p.lines[p.i].indent > indent); p.i++ {
		lines = append(lines, p.lines[p.i])
	}
	for len(lines) > 0 && lines[len(lines)-1].text == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return ""
	}
	base := lines[0].indent
	var b strings.Builder
	for i, l := range lines {
		text := ""
		if l.text != "" {
			text = strings.Repeat(" ", max(l.indent-base, 0)) + l.text
		}
		switch {
		case i == 0:
		case style[0] == '|' || text == "" || lines[i-1].text == "" || l.indent > base:
			b.WriteByte('\n')
		default:
			b.WriteByte(' ') // folded
		}
		b.WriteString(text)
	}
	if !strings.HasSuffix(style, "-") {
		b.WriteByte('\n')
	}
	return b.String()
}

// splitYAMLKey splits "KEY: VALUE" and "KEY:" (a plain key).
func splitYAMLKey(s string) (key, value string, ok bool) {
	if s == "" || strings.ContainsAny(s[:1], `"'[{#&*!|>`) {
		return "", "", false
	}
	if k, v, found := strings.Cut(s, ": "); found {
		return k, strings.TrimSpace(stripComment(v)), true
	}
	if strings.HasSuffix(s, ":") {
		return strings.TrimSuffix(s, ":"), "", true
	}
	return "", "", false
}

func stripComment(s string) string {
	if strings.HasPrefix(s, "#") {
		return ""
	}
	if i := strings.Index(s, " #"); i >= 0 && !strings.ContainsAny(s[:1], `"'`) {
		return strings.TrimSpace(s[:i])
	}
	return s
}

func yamlScalar(s string, n int) (any, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		end := strings.LastIndex(s, `"`)
		if end == 0 {
			return nil, fmt.Errorf("line %d: unterminated string %s", n, s)
		}
		return strconv.Unquote(s[:end+1])
	case strings.HasPrefix(s, "'"):
		end := strings.LastIndex(s, "'")
		if end == 0 {
			return nil, fmt.Errorf("line %d: unterminated string %s", n, s)
		}
		return strings.ReplaceAll(s[1:end], "''", "'"), nil
	}
	return strings.TrimSpace(stripComment(s)), nil
}

// yget walks maps by key and lists by index; nil when something is missing.
func yget(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func ymap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func ylist(v any) []any { l, _ := v.([]any); return l }

func ystrings(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, x := range ylist(v) {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("want a list of strings, got %v", v)
		}
		out = append(out, s)
	}
	if out == nil {
		t.Fatalf("want a list of strings, got %v", v)
	}
	return out
}

func yint(t *testing.T, what string, v any) int {
	t.Helper()
	s, _ := v.(string)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: want a number, got %v", what, v)
	}
	return n
}
