#!/usr/bin/env bash
# The device check, for a machine with an NVIDIA GPU (run it there, e.g.
# through the device tool: `bash scripts/gpu-check.sh`; about 2 minutes):
#   1. build prism-run;
#   2. the real-NVML tests (go test -tags gpu ./probes/gpu);
#   3. prism-run doctor (NVML line);
#   4. a small PyTorch job that grows its GPU memory, under prism-run with a
#      GPU-memory rule of 1 GiB that degrades then stops it: exit 124 (or 75
#      if it checkpoints), with the peak in the report.
# Everything it writes goes to ${OUT:-/tmp/gpu-check}.
set -u
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
cd "$(dirname "$0")/.."
log() { echo "== $*" | tee -a "$out/summary.txt"; }

nvidia-smi >"$out/nvidia-smi.txt" 2>&1; log "nvidia-smi: exit $?"
go build -o bin/prism-run . >"$out/build.txt" 2>&1; log "build: exit $?"
go test -count=1 -tags gpu -v ./probes/gpu >"$out/gpu-tests.txt" 2>&1; log "real-NVML tests: exit $?"
bin/prism-run doctor >"$out/doctor.txt" 2>&1; log "doctor: exit $? ($(grep 'GPU (NVML)' "$out/doctor.txt"))"

cat >"$out/grow.py" <<'PY'
import time, torch
xs = []
for i in range(64):
    xs.append(torch.ones(64 * 1024 * 1024, dtype=torch.uint8, device="cuda"))  # +64 MiB
    print(f"PRISM iter={i} held_mib={64 * (i + 1)}", flush=True)
    time.sleep(0.1)
PY
cat >"$out/gpu-rule.toml" <<'TOML'
[[rule]]
name = "gpu-memory-1g"
kind = "threshold"
metric = "gpu_memory_bytes"
above = "1GiB"
severity = "high"
action = "degrade"
what = "free-memory"
escalate = "stop"
escalate_after = "1s"
TOML
bin/prism-run --policy "$out/gpu-rule.toml" --report "$out/report.json" -- python3 "$out/grow.py" >"$out/job.txt" 2>&1
log "PyTorch job under prism-run: exit $? (want 124: stopped by gpu-memory-1g)"
grep -E '"(exit_code|rule|reason|gpu_memory_bytes)"' "$out/report.json" | tee -a "$out/summary.txt"
