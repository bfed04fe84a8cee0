#!/usr/bin/env bash
# A real Slurm, end to end (make slurm-test): a single-node Slurm of its
# own (munged, slurmctld, slurmd, from Debian's packages, installed when
# missing), configured in a temp folder, runs the jobs of examples/slurm/:
#
#  1. checkpoint, requeue, resume: colorer.sbatch with --requeue and
#     --signal=B:USR1@T gets its SIGUSR1 at once (scancel --batch
#     --signal=USR1: --signal=B:USR1@T itself fires only T to T+30 s
#     before the time limit); the job script passes it on to prism-run,
#     for which a SIGUSR1 inside a Slurm job is a checkpoint-stop: it asks
#     the colorer for a checkpoint, stops it once acknowledged and exits
#     75; the job script requeues the job; the requeued job
#     (SLURM_RESTART_COUNT=1) resumes from the state and finishes with the
#     same result as an uninterrupted run of the same seed (outside
#     Slurm). While the colorer runs, Slurm's process tracking lists it
#     (scontrol listpids) and, with proctrack/cgroup, it sits in the
#     step's own freezer cgroup (prism-run nests none there) but in
#     prism-run's memory cgroup;
#  2. the time limit, three jobs with --time=1 side by side, each ending
#     TIMEOUT with prism-run's report written:
#     - run.sbatch over a child that runs forever (prism-run's default
#       --on-term forward): the child dies of the forwarded SIGTERM (143),
#       no SIGKILL needed (KillWait=10);
#     - run.sbatch with PRISM_ON_TERM=checkpoint-stop over a shell child
#       that outlives SIGTERM, answers SIGUSR1 with a checkpoint and
#       leaves two SIGTERM-proof processes behind (a sleep in its process
#       group, a witness in a session of its own that logs the SIGTERMs
#       Slurm sends it): prism-run exits 75 after the acknowledged
#       checkpoint. With proctrack/cgroup Slurm's SIGTERM goes to prism-run
#       alone (the job's task), with proctrack/linuxproc to every process
#       of the job: the witness says which;
#     - colorer.sbatch over a "colorer" that only sleeps: the job script
#       passes Slurm's SIGTERM on to prism-run (143).
#     No process of these jobs survives them.
#
# The four jobs run side by side (OverSubscribe=YES, --oversubscribe: the
# time-limit jobs only sleep), with the uninterrupted reference run
# outside Slurm; the time limit (60 s, plus up to 30 s until slurmctld
# looks) sets the pace: about a minute and a half in all.
#
# Usage (as root, on a machine with no other Slurm on ports 6817/6818):
#   scripts/slurm-test.sh [--bin DIR] [--proctrack cgroup|linuxproc]
#     --bin DIR    prism-run and colorer from DIR (default: make build examples, ./bin)
#     --proctrack  cgroup (proctrack/cgroup + task/cgroup, cgroup v1; the
#                  default where v1's freezer, memory and cpuset are
#                  mounted) or linuxproc (proctrack/linuxproc + task/none)
# KEEP=1 keeps the temp folder (configuration, logs, job folders).
# Exits 0 only when every check passed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=""
proctrack=""
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$(cd "$2" && pwd); shift 2 ;;
	--proctrack) proctrack=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "slurm-test: unknown argument $1" >&2; exit 2 ;;
	esac
done

t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
say() { printf '[%3ss] %s\n' "$(elapsed)" "$*"; }
die() { say "FATAL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)"
# prism-run takes settings from PRISM_* variables (PRISM_TIMEOUT is
# --timeout, ...), and sbatch passes this environment on to the jobs:
# none of the caller's.
for v in $(compgen -v PRISM_ || true); do unset "$v"; done

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); say "  ok    $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); say "  FAIL  $1${2:+: $2}"; }
# check NAME COMMAND...: COMMAND's status decides.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}
# check_eq NAME GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then pass "$1 ($2)"; else fail "$1" "got '$2', want '$3'"; fi
}

# ---- tools ---------------------------------------------------------------
need=()
for c in munged slurmctld slurmd sbatch jq; do command -v "$c" >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
	say "installing munge, slurmctld, slurmd, slurm-client, jq (missing: ${need[*]})"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		munge slurmctld slurmd slurm-client jq >/dev/null
fi
say "$(slurmctld -V)"

if [ -z "$bin" ]; then
	say "building prism-run and colorer (make build examples)"
	make -s -C "$repo" build examples >/dev/null
	bin=$repo/bin
fi
for b in prism-run colorer; do [ -x "$bin/$b" ] || die "no $bin/$b"; done

port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
for p in 6817 6818; do port_busy "$p" && die "port $p is in use (another Slurm?)"; done

if [ -z "$proctrack" ]; then
	proctrack=linuxproc
	if [ -d /sys/fs/cgroup/freezer ] && [ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/cpuset ]; then
		proctrack=cgroup
	fi
fi
case $proctrack in cgroup | linuxproc) ;; *) die "--proctrack cgroup or linuxproc, not $proctrack" ;; esac

# ---- clean-up, on every exit path ------------------------------------------
tmp=$(mktemp -d /tmp/prism-slurm-test.XXXXXX)
chmod 755 "$tmp"
munge_pid_file=/run/munge/munged.pid
started_munged=0
cgroups_before=$(ls -d /sys/fs/cgroup/*/slurm* 2>/dev/null || true)

# stop_by_pid_file FILE NAME: TERM the PID in FILE, wait up to 10 s (then
# KILL), remove FILE.
stop_by_pid_file() {
	local f=$1 name=$2 pid i
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			say "$name ($pid) still running after 10 s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$f"
}

cleanup() {
	local rc=$? i c
	trap - EXIT INT TERM
	set +e
	if [ -s "$tmp/slurmctld.pid" ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
		say "cancelling the jobs left"
		scancel $(squeue -h -o %i) 2>/dev/null
		for ((i = 0; i < 75; i++)); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
	fi
	if [ "$rc" != 0 ] && [ -d "$tmp" ]; then
		for f in "$tmp"/jobs/*/out.txt; do [ -f "$f" ] && { say "--- $f"; tail -n 40 "$f"; }; done
		for f in "$tmp"/log/slurmctld.log "$tmp"/log/slurmd.log; do
			[ -f "$f" ] && { say "--- $f (errors, pmix's left out)"; grep -i error "$f" | grep -v -e pmix -e 'state file' -e 'Trying backup' | tail -n 15; }
		done
	fi
	[ -s "$tmp/slurmd.pid" ] && say "stopping the daemons"
	stop_by_pid_file "$tmp/slurmd.pid" slurmd
	stop_by_pid_file "$tmp/slurmctld.pid" slurmctld
	[ "$started_munged" = 1 ] && stop_by_pid_file "$munge_pid_file" munged
	# The Slurm cgroups this run made (slurm_NODE in each v1 controller),
	# when no process is left in them.
	for c in $(ls -d /sys/fs/cgroup/*/slurm* 2>/dev/null); do
		grep -qxF "$c" <<<"$cgroups_before" && continue
		find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- munge -------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
	say "munged is running already: using it"
else
	[ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create >/dev/null
	install -d -o munge -g munge -m 0755 /run/munge
	rm -f "$munge_pid_file"
	runuser -u munge -- /usr/sbin/munged
	started_munged=1
	for ((i = 0; i < 50; i++)); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
	munge -n | unmunge >/dev/null || die "munged does not answer"
	say "munged started (pid $(cat "$munge_pid_file"))"
fi

# ---- slurm.conf ----------------------------------------------------------------
node=$(hostname -s)
mkdir -p "$tmp/etc" "$tmp/state" "$tmp/spool" "$tmp/log" "$tmp/jobs"
: >"$tmp/log/jobcomp.txt"
# The node as slurmd sees it, with RealMemory a tenth under what it reports.
hw=$(slurmd -C | sed -n "1s/^NodeName=[^ ]* //p")
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
hw=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$hw")
if [ "$proctrack" = cgroup ]; then
	plugins="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup"
	cat >"$tmp/etc/cgroup.conf" <<-EOF
		CgroupPlugin=cgroup/v1
		CgroupAutomount=yes
		ConstrainCores=yes
		ConstrainRAMSpace=yes
	EOF
else
	plugins="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none"
fi
cat >"$tmp/etc/slurm.conf" <<EOF
# scripts/slurm-test.sh: a single-node cluster for the test, nothing else.
ClusterName=prismtest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
# A requeued job waits cred_expire+1 s (120 by default) to start again.
AuthInfo=cred_expire=10
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
$plugins
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# sacct -c reads finished jobs from here (no slurmdbd).
JobCompType=jobcomp/filetxt
JobCompLoc=$tmp/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerParameters=sched_interval=5,bf_interval=5
JobRequeue=1
# SIGKILL 10 s after the time limit's SIGTERM (30 by default): room for
# prism-run's --checkpoint-timeout (4 s) + 2 x --kill-after (2 s) in the
# --on-term checkpoint-stop job.
KillWait=10
# Finished jobs stay known to scontrol for 10 minutes.
MinJobAge=600
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
# OverSubscribe=YES: jobs that ask (--oversubscribe) may share a CPU.
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$tmp/etc/slurm.conf
say "slurm.conf in $tmp/etc: proctrack/$proctrack; node $node ($hw)"

# ---- daemons -------------------------------------------------------------------
slurmctld || die "slurmctld did not start"
slurmd || die "slurmd did not start"
for ((i = 0; i < 100; i++)); do [ -s "$tmp/slurmctld.pid" ] && [ -s "$tmp/slurmd.pid" ] && break; sleep 0.1; done
[ -s "$tmp/slurmctld.pid" ] && [ -s "$tmp/slurmd.pid" ] || die "no PID files from slurmctld and slurmd"
for ((i = 0; i < 150; i++)); do
	[ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] && break
	sleep 0.2
done
[ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] || die "node $node is not idle: $(sinfo -h -n "$node" -o '%T %E' 2>&1)"
say "slurmctld (pid $(cat "$tmp/slurmctld.pid")) and slurmd (pid $(cat "$tmp/slurmd.pid")) up, $node idle"

# job_field JOBID FIELD: one field of scontrol show job.
job_field() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# wait_job_state JOBID STATE SECONDS: until the job is in STATE.
wait_job_state() {
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		[ "$(job_field "$1" JobState)" = "$2" ] && return 0
		sleep 0.5
	done
	return 1
}

# ---- submit the three jobs ---------------------------------------------------------
# The colorer: 4M tabu steps of G(500, 0.5), about 13 s on an idle core;
# interrupted after about 3 s of it.
colorer_args=(-n 500 -k-iters 100000000 -report-every 100000 -max-iters 4000000)
seed=7
cjob=$tmp/jobs/colorer
tjob=$tmp/jobs/timelimit
sjob=$tmp/jobs/timelimit-ckstop
mkdir -p "$cjob" "$tjob" "$sjob"

# All three ask for --oversubscribe (the partition's OverSubscribe=YES):
# the node has 2 CPUs, and the two time-limit jobs only sleep. (A job
# that does not ask keeps the node from the ones that do.)
# --signal=B:USR1@60 with --time=5 would fire 4 minutes in: the test sends
# the same signal itself (scancel --batch --signal=USR1) below.
cid=$(cd "$cjob" && BIN=$bin RUN_DIR=$cjob SEED=$seed \
	sbatch --parsable --oversubscribe --requeue --signal=B:USR1@60 --time=5 --job-name=colorer --output="$cjob/out.txt" \
	"$repo/examples/slurm/colorer.sbatch" "${colorer_args[@]}")
say "submitted the colorer job $cid (colorer.sbatch --requeue --signal=B:USR1@60 --time=5)"

# Time limit: 1 minute (the smallest); prism-run's --kill-after (2 s) is
# under KillWait (10 s), so prism-run ends the child before Slurm's SIGKILL.
tid=$(cd "$tjob" && BIN=$bin RUN_DIR=$tjob KILL_AFTER=2s \
	sbatch --parsable --oversubscribe --time=1 --job-name=timelimit --output="$tjob/out.txt" \
	"$repo/examples/slurm/run.sbatch" sleep 100000)
say "submitted the time-limit job $tid (run.sbatch --time=1 over sleep 100000; --on-term forward)"

# The same time limit with --on-term checkpoint-stop (PRISM_ON_TERM), over
# a child that outlives SIGTERM (it logs it), answers SIGUSR1 with a
# checkpoint, and leaves two processes behind that outlive SIGTERM: a sleep
# that ignores it, in its process group, and a witness in a session of its
# own (setsid), out of the reach of prism-run's SIGTERM to the group, that
# logs the SIGTERMs it gets: Slurm's. --checkpoint-timeout (4 s) +
# 2 x --kill-after (2 s) fit in KillWait (10 s).
cat >"$sjob/child.sh" <<'EOF'
d=$(cd "$(dirname "$0")" && pwd)
log() { echo "child: $(date +%s.%N) $*"; }
trap 'log SIGTERM' TERM
trap 'log SIGUSR1; ck=$d/ck-$$.txt; echo state >"$ck"; echo "PRISM checkpoint=\"$ck\""' USR1
(trap '' TERM; exec sleep 100003) &
in_group=$!
(exec setsid sh "$d/witness.sh") &
echo "$$ $in_group $!" >"$d/pids"
echo "PRISM iter=1"
while :; do sleep 1 & wait $!; done
EOF
cat >"$sjob/witness.sh" <<'EOF'
trap 'echo "witness: $(date +%s.%N) SIGTERM"' TERM
while :; do sleep 1 & wait $!; done
EOF
sid=$(cd "$sjob" && BIN=$bin RUN_DIR=$sjob KILL_AFTER=2s PRISM_ON_TERM=checkpoint-stop PRISM_CHECKPOINT_TIMEOUT=4s \
	sbatch --parsable --oversubscribe --time=1 --job-name=timelimit-ckstop --output="$sjob/out.txt" \
	"$repo/examples/slurm/run.sbatch" sh "$sjob/child.sh")
say "submitted the time-limit job $sid (run.sbatch --time=1, PRISM_ON_TERM=checkpoint-stop, over a SIGTERM-proof shell)"
# colorer.sbatch at its time limit (no SIGUSR1 in time): the job script
# passes the SIGTERM on to prism-run (with proctrack/cgroup Slurm sends it
# to the script alone), and prism-run writes its report. BIN here holds
# prism-run and a "colorer" that only sleeps. colorer.sbatch's
# --signal=B:USR1@120 would fire at once with --time=1: a SIGCONT
# (harmless) instead.
xjob=$tmp/jobs/timelimit-colorer
mkdir -p "$xjob/bin"
ln -s "$bin/prism-run" "$xjob/bin/prism-run"
printf '#!/bin/sh\nexec sleep 100005\n' >"$xjob/bin/colorer"
chmod +x "$xjob/bin/colorer"
xid=$(cd "$xjob" && BIN=$xjob/bin RUN_DIR=$xjob \
	sbatch --parsable --oversubscribe --time=1 --signal=B:CONT@1 --job-name=timelimit-colorer --output="$xjob/out.txt" \
	"$repo/examples/slurm/colorer.sbatch")
say "submitted the time-limit job $xid (colorer.sbatch --time=1 over a colorer that sleeps)"
for j in "$cid" "$tid" "$sid" "$xid"; do check "job $j RUNNING (within 30 s)" wait_job_state "$j" RUNNING 30; done

# The same computation uninterrupted, outside Slurm (no SLURM_* variables),
# in the background meanwhile: the reference result.
ref=$tmp/jobs/reference
mkdir -p "$ref"
env $(env | sed -n 's/^\(SLURM[A-Z_]*\)=.*/-u \1/p') \
	"$bin/prism-run" --mission world-record --checkpoint-dir "$ref/ck" --seed "$seed" --report "$ref/report.json" \
	-- "$bin/colorer" "${colorer_args[@]}" >"$ref/out.txt" 2>&1 &
ref_pid=$!
say "started the uninterrupted reference run (seed $seed, outside Slurm; pid $ref_pid)"

# listpids JOBID: the PIDs Slurm's process tracking finds in the job.
listpids() { scontrol listpids "$1" 2>/dev/null | awk 'NR > 1 { print $1 }'; }
# cgroup_of PID CONTROLLER: PID's cgroup v1 path in CONTROLLER.
cgroup_of() { sed -n "s/^[0-9]*:$2://p" "/proc/$1/cgroup" 2>/dev/null; }
# alive PID WORD: PID is running, and its command line has WORD (not a
# reused PID).
alive() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -w -- "$2" >/dev/null; }

# ---- 1. checkpoint, requeue, resume ------------------------------------------------
say "== 1. checkpoint-stop on SIGUSR1, requeue, resume (job $cid)"
for ((i = 0; i < 120; i++)); do grep -q '^PRISM iter=' "$cjob/out.txt" 2>/dev/null && break; sleep 0.5; done
grep -q '^PRISM iter=' "$cjob/out.txt" 2>/dev/null || die "the colorer of job $cid did not start within 60 s (job state $(job_field "$cid" JobState))"
sleep 3

# Slurm's process tracking sees the colorer (prism-run's child); with
# proctrack/cgroup, the colorer is in the step's own freezer cgroup (the
# one Slurm reads and freezes) and in prism-run's memory cgroup nested in
# the step's.
# (The job's prism-run is the one with the job's checkpoint folder; the
# reference run's colorer has the same command line.)
prism_pid=$(pgrep -f -n "^$bin/prism-run --mission world-record --checkpoint-dir $cjob/ck " || true)
colorer_pid=$([ -n "$prism_pid" ] && pgrep -P "$prism_pid" -f "^$bin/colorer " || true)
[ -n "$colorer_pid" ] || fail "the job's running colorer found (pgrep)"
if [ -n "$colorer_pid" ]; then
	say "   the colorer is pid $colorer_pid; freezer cgroup $(cgroup_of "$colorer_pid" freezer); memory cgroup $(cgroup_of "$colorer_pid" memory)"
	if listpids "$cid" | grep -x "$colorer_pid" >/dev/null; then
		pass "scontrol listpids $cid lists the running colorer ($colorer_pid)"
	else
		fail "scontrol listpids $cid lists the running colorer ($colorer_pid)" "it lists: $(listpids "$cid" | tr '\n' ' ')"
	fi
	if [ "$proctrack" = cgroup ]; then
		fz=$(cgroup_of "$colorer_pid" freezer)
		case $fz in
		*/job_"$cid"/step_batch) pass "the colorer's freezer cgroup is the step's own ($fz)" ;;
		*) fail "the colorer's freezer cgroup is the step's own" "got $fz" ;;
		esac
		mem=$(cgroup_of "$colorer_pid" memory)
		case $mem in
		*/job_"$cid"/step_batch/*prism-run.*) pass "the colorer's memory cgroup is prism-run's, in the step's ($mem)" ;;
		*) fail "the colorer's memory cgroup is prism-run's, in the step's" "got $mem" ;;
		esac
	fi
fi
# The time-limit jobs' children and what they left, listed by Slurm too.
tchild=""
for p in $(listpids "$tid"); do alive "$p" 100000 && [ "$(tr '\0' ' ' <"/proc/$p/cmdline")" = "sleep 100000 " ] && tchild=$p; done
check "scontrol listpids $tid lists the time-limit child (sleep 100000: ${tchild:-none})" test -n "$tchild"
for ((i = 0; i < 20; i++)); do [ -s "$sjob/pids" ] && break; sleep 0.5; done
read -r s_child s_group s_session <"$sjob/pids" || die "no $sjob/pids from the checkpoint-stop job's child"
slist=$(listpids "$sid")
for p in "$s_child:the shell child" "$s_group:its sleep in its process group" "$s_session:its witness in a session of its own"; do
	if grep -qx "${p%%:*}" <<<"$slist"; then pass "scontrol listpids $sid lists ${p#*:} (${p%%:*})"; else fail "scontrol listpids $sid lists ${p#*:} (${p%%:*})" "it lists: $(tr '\n' ' ' <<<"$slist")"; fi
done

scancel --batch --signal=USR1 "$cid"
say "   sent SIGUSR1 to the batch shell (scancel --batch --signal=USR1 $cid)"
state=$cjob/state/state.json
acked() { jq '.checkpoints | length' "$state" 2>/dev/null || echo 0; }
for ((i = 0; i < 100; i++)); do [ "$(acked)" -ge 1 ] && break; sleep 0.2; done
check_eq "a checkpoint acknowledged in the state (state.json)" "$(acked)" 1

# prism-run exits 75, the job script calls scontrol requeue; the job
# starts again after cred_expire (10 s) and a scheduler pass (5 s).
restarts_reach() { local i; for ((i = 0; i < $2 * 2; i++)); do [ "$(job_field "$cid" Restarts)" -ge "$1" ] 2>/dev/null && return 0; sleep 0.5; done; return 1; }
check "job $cid requeued (Restarts=1 within 60 s)" restarts_reach 1 60
check "job $cid ran again and COMPLETED (within 90 s)" wait_job_state "$cid" COMPLETED 90
check_eq "job $cid restarts" "$(job_field "$cid" Restarts)" 1
check_eq "job $cid exit code" "$(job_field "$cid" ExitCode)" 0:0
requeued_on_75() { grep -q "(restart 0): prism-run exited 75" "$cjob/out.txt" && grep -q "(restart 0): .*resumable: requeueing" "$cjob/out.txt"; }
check "the job script saw prism-run exit 75 and requeued" requeued_on_75

ref_rc=0
wait "$ref_pid" || ref_rc=$?
check_eq "reference run exit code" "$ref_rc" 0

r0=$cjob/report-$cid.0.json
r1=$cjob/report-$cid.1.json
q() { jq -r "$2" "$1" 2>/dev/null || echo "(no $1)"; }
check "first run's report written ($(basename "$r0"))" test -s "$r0"
check "requeued run's report written ($(basename "$r1"))" test -s "$r1"
# The first run: the SIGUSR1 (passed on by the job script) was a
# checkpoint-stop: a checkpoint request (rule "signal"), acknowledged,
# then the colorer stopped and prism-run's 75.
check_eq "first run's exit code (checkpoint-stop, acknowledged)" "$(q "$r0" .exit_code)" 75
check_eq "first run's reason" "$(q "$r0" .reason)" policy
check_eq "first run: SIGUSR1 reached prism-run" "$(q "$r0" '[.forwarded_signals[]? | select(. == "SIGUSR1")] | length')" 1
usr1_reason="SIGUSR1 sent to prism-run: checkpoint, then stop"
check_eq "first run: the decision \"$usr1_reason\"" \
	"$(q "$r0" "[.decisions[]? | select(.reason == \"$usr1_reason\" and .action == \"checkpoint-stop\")] | length")" 1
check_eq "first run: the acknowledged checkpoint answered SIGUSR1 (rule)" "$(q "$r0" '.checkpoints[-1].rule')" signal
ck=$(q "$r0" '.checkpoints[-1].path')
check "first run: the checkpoint file exists ($ck)" test -s "$ck"
# The requeued run: resumed from that checkpoint, the attempt log carried on.
check_eq "requeued run's exit code" "$(q "$r1" .exit_code)" 0
check_eq "requeued run resumed from the first run's checkpoint" "$(q "$r1" '.attempt_log[-1].resume')" "$ck"
check_eq "requeued run: attempts in the log (the first run's carried over)" "$(q "$r1" '.attempt_log | length')" 2
check "requeued colorer says it resumed" grep -q "^resumed from $ck" "$cjob/out.txt"
# Same seed, same result as the uninterrupted run.
check_eq "result equal to the uninterrupted run's" "$(q "$r1" .markers.result.text)" "$(q "$ref/report.json" .markers.result.text)"
check_eq "colouring equal to the uninterrupted run's (hash)" "$(q "$r1" .markers.result_coloring.text)" "$(q "$ref/report.json" .markers.result_coloring.text)"
check_eq "last iter equal to the uninterrupted run's" "$(q "$r1" .markers.iter.last)" "$(q "$ref/report.json" .markers.iter.last)"

# ---- the report's Slurm facts ("slurm" object) ---------------------------------
# SLURM-FACTS: the report's "slurm" object (job_id, restart_count, ...),
# read from SLURM_JOB_ID, SLURM_RESTART_COUNT, ... (omitted outside Slurm).
check_eq "SLURM-FACTS first run: .slurm.job_id" "$(q "$r0" .slurm.job_id)" "$cid"
check_eq "SLURM-FACTS first run: .slurm.restart_count" "$(q "$r0" .slurm.restart_count)" 0
check_eq "SLURM-FACTS requeued run: .slurm.job_id" "$(q "$r1" .slurm.job_id)" "$cid"
check_eq "SLURM-FACTS requeued run: .slurm.restart_count" "$(q "$r1" .slurm.restart_count)" 1
check_eq "SLURM-FACTS .slurm.job_name" "$(q "$r1" .slurm.job_name)" colorer
check_eq "SLURM-FACTS .slurm.partition" "$(q "$r1" .slurm.partition)" test
check_eq "SLURM-FACTS .slurm.cluster" "$(q "$r1" .slurm.cluster)" prismtest
check_eq "SLURM-FACTS .slurm.node" "$(q "$r1" .slurm.node)" "$node"
check_eq "SLURM-FACTS no .slurm outside Slurm (reference run)" "$(q "$ref/report.json" '.slurm == null')" true
# --metrics-textfile labels every series with the job id.
check "metrics textfile labelled slurm_job_id=\"$cid\"" grep -q "slurm_job_id=\"$cid\"" "$cjob/metrics-$cid.prom"

# ---- prism-run's cgroup inside the job's (proctrack/cgroup) -----------------------
if [ "$proctrack" = cgroup ]; then
	for r in "$r0" "$r1"; do
		cg=$(q "$r" .cgroup.path)
		case $cg in
		*/job_"$cid"/step_batch/*/prism-run.*) pass "$(basename "$r"): run cgroup nested in the job's ($cg)" ;;
		*) fail "$(basename "$r"): run cgroup nested in the job's" "got $cg" ;;
		esac
	done
fi

# ---- 2. the time limit ---------------------------------------------------------------
say "== 2. the time limit (jobs $tid, $sid and $xid, --time=1: TERM at 60-90 s, KILL 10 s later)"
check "job $tid ended TIMEOUT (within 150 s of its start)" wait_job_state "$tid" TIMEOUT 150
check "job $sid ended TIMEOUT (within 45 s of job $tid)" wait_job_state "$sid" TIMEOUT 45
rt=$tjob/report-$tid.0.json
rs=$sjob/report-$sid.0.json
for ((i = 0; i < 20; i++)); do [ -s "$rt" ] && [ -s "$rs" ] && break; sleep 0.5; done

# --on-term forward (the default): the child dies of the SIGTERM.
say "   job $tid: --on-term forward, over sleep 100000"
check_eq "job $tid exit code (the child's SIGTERM, through prism-run)" "$(job_field "$tid" ExitCode)" 143:0
sacct_state=$(sacct -c -n -X -j "$tid" -o state 2>/dev/null | awk 'NF && !n { print $1; n = 1 }')
check_eq "sacct -c (jobcomp/filetxt): job $tid" "$sacct_state" TIMEOUT
check "time-limit report written ($(basename "$rt"))" test -s "$rt"
check_eq "time-limit report: exit code" "$(q "$rt" .exit_code)" 143
check_eq "time-limit report: reason" "$(q "$rt" .reason)" signaled
check_eq "time-limit report: the child's signal" "$(q "$rt" .signal)" SIGTERM
check_eq "time-limit report: SIGTERM reached prism-run" "$(q "$rt" '[.forwarded_signals[]? | select(. == "SIGTERM")] | length')" 1
check_eq "time-limit report: no SIGKILL needed" "$(q "$rt" '.escalated // false')" false
ran=$(q "$rt" '.duration_s | floor')
check "time-limit report: the child ran the minute out (${ran} s)" test "$ran" -ge 59
check_eq "time-limit report: the child's pid, as Slurm listed it" "$(q "$rt" '.attempt_log[0].pid')" "${tchild:-none}"
check_eq "SLURM-FACTS time-limit report: .slurm.job_id" "$(q "$rt" .slurm.job_id)" "$tid"
check "time-limit metrics labelled slurm_job_id=\"$tid\"" grep -q "slurm_job_id=\"$tid\"" "$tjob/metrics-$tid.prom"

# --on-term checkpoint-stop: the SIGTERM becomes a checkpoint request, the
# checkpoint is acknowledged, then the child (which outlives SIGTERM) and
# what it left get SIGKILL after --kill-after: 75.
say "   job $sid: --on-term checkpoint-stop, over a SIGTERM-proof shell; its signals:"
grep '^child: ' "$sjob/out.txt" 2>/dev/null | sed 's/^/      /'
check_eq "job $sid exit code (prism-run's 75)" "$(job_field "$sid" ExitCode)" 75:0
check "checkpoint-stop report written ($(basename "$rs"))" test -s "$rs"
check_eq "checkpoint-stop report: exit code (checkpoint acknowledged)" "$(q "$rs" .exit_code)" 75
check_eq "checkpoint-stop report: reason" "$(q "$rs" .reason)" policy
term_reason="SIGTERM sent to prism-run: checkpoint, then stop"
check_eq "checkpoint-stop report: the decision \"$term_reason\"" \
	"$(q "$rs" "[.decisions[]? | select(.reason == \"$term_reason\" and .action == \"checkpoint-stop\")] | length")" 1
check_eq "checkpoint-stop report: the checkpoint answered the SIGTERM (rule)" "$(q "$rs" '.checkpoints[-1].rule')" signal
sck=$(q "$rs" '.checkpoints[-1].path')
check "checkpoint-stop report: the checkpoint file exists ($sck)" test -s "$sck"
check_eq "checkpoint-stop report: the child outlived SIGTERM (SIGKILL)" "$(q "$rs" '.escalated // false')" true
# Slurm's SIGTERM: with proctrack/cgroup only to the job script's own
# process (its "task": here prism-run, exec'd), with proctrack/linuxproc
# to every process of the job (the witness, in a session of its own, says
# which).
witness_terms=$(grep -c '^witness: .* SIGTERM' "$sjob/out.txt" 2>/dev/null || true)
if [ "$proctrack" = cgroup ]; then
	check_eq "Slurm's SIGTERM went to prism-run alone (the witness got none)" "${witness_terms:-0}" 0
	check_eq "the child's first signal: the checkpoint request (SIGUSR1), before prism-run's SIGTERM" \
		"$(grep -m 1 -o '^child: [0-9.]* SIG[A-Z0-9]*' "$sjob/out.txt" | awk '{ print $3 }')" SIGUSR1
else
	check "Slurm's SIGTERM reached every process of the job (the witness logged one)" test "${witness_terms:-0}" -ge 1
fi
ran=$(q "$rs" '.duration_s | floor')
check "checkpoint-stop report: the child ran the minute out (${ran} s)" test "$ran" -ge 59
check_eq "SLURM-FACTS checkpoint-stop report: .slurm.job_id" "$(q "$rs" .slurm.job_id)" "$sid"

# colorer.sbatch: the job script passed Slurm's SIGTERM on, prism-run
# forwarded it, the "colorer" died of it, the report is written.
say "   job $xid: colorer.sbatch over a colorer that sleeps"
check "job $xid ended TIMEOUT (within 45 s of job $tid)" wait_job_state "$xid" TIMEOUT 45
rx=$xjob/report-$xid.0.json
for ((i = 0; i < 20; i++)); do [ -s "$rx" ] && break; sleep 0.5; done
check "colorer.sbatch passed the SIGTERM on to prism-run" grep -q "SIGTERM: passing it on to prism-run" "$xjob/out.txt"
check "colorer.sbatch time-limit report written ($(basename "$rx"))" test -s "$rx"
check_eq "colorer.sbatch time-limit report: exit code" "$(q "$rx" .exit_code)" 143
check_eq "colorer.sbatch time-limit report: the child's signal" "$(q "$rx" .signal)" SIGTERM
check "colorer.sbatch said prism-run exited 143 and did not requeue" grep -q "prism-run exited 143" "$xjob/out.txt"
xchild=$(q "$rx" '.attempt_log[0].pid // empty')

# ---- no process of the time-limit jobs survives them ------------------------------------
survivors() {
	local p
	alive "${tchild:-0}" 100000 && echo "$tchild(sleep 100000)"
	alive "$s_child" child.sh && echo "$s_child(sh child.sh)"
	alive "$s_group" 100003 && echo "$s_group(sleep 100003)"
	alive "$s_session" witness.sh && echo "$s_session(sh witness.sh)"
	alive "${xchild:-0}" 100005 && echo "$xchild(sleep 100005)"
	if [ "$proctrack" = cgroup ]; then
		for p in $(grep -lE "/job_($tid|$sid|$xid)(/|$)" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3); do
			echo "$p($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null))"
		done
	fi
	return 0
}
for ((i = 0; i < 10; i++)); do [ -z "$(survivors)" ] && break; sleep 0.5; done
what="the children, their sleeps"
[ "$proctrack" = cgroup ] && what+=", any process in the jobs' cgroups"
check_eq "no process of jobs $tid, $sid and $xid left ($what)" "$(survivors | tr '\n' ' ')" ""

# ---- what is left --------------------------------------------------------------------
# The run cgroups of the five prism-runs (every controller), by name.
left=""
for r in "$r0" "$r1" "$rt" "$rs" "$rx"; do
	cg=$(q "$r" '.cgroup.path // empty')
	[ -n "$cg" ] && left+=$(find /sys/fs/cgroup -maxdepth 8 -type d -name "$(basename "$cg")" 2>/dev/null || true)
done
check_eq "no run cgroup of the jobs' prism-runs left" "$left" ""

say "== $passed passed, $failed failed, $(elapsed) s (proctrack/$proctrack, jobs $cid, $tid, $sid and $xid)"
for f in "${failures[@]}"; do say "   failed: $f"; done
[ "$failed" = 0 ]
