#!/usr/bin/env bash
# `make test-slurm`: the Slurm test against a real Slurm. Installs Debian's slurm-wlm and munge
# when missing (as root, with apt-get), starts munged, slurmctld and slurmd on this machine as a
# one-node cluster (generated key and slurm.conf, state and spool in a temporary directory,
# ports that are free), runs the ignored test `slurm_job_array_*` of tests/cluster.rs against it
# (SLURM_CONF points there), and stops every daemon it started, also on failure or interrupt.
# Needs root: slurmd starts jobs and SlurmUser is root. LIBTORCH must be set (the Makefile does).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "test-slurm: error: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "runs a one-node Slurm cluster as root (slurmd starts the jobs): run it as root"
[ -n "${LIBTORCH:-}" ] || fail "LIBTORCH is not set: run it through 'make test-slurm'"

missing=()
for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test-slurm: ${missing[*]} missing: installing Debian's slurm-wlm and munge"
    command -v apt-get >/dev/null || fail "no apt-get to install slurm-wlm and munge; install them (Slurm 22.05 and munge) and rerun"
    # Keep the packages' maintainer scripts from starting system daemons (the usual policy-rc.d).
    policy=/usr/sbin/policy-rc.d
    added_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=yes
    fi
    status=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; } || status=$?
    [ "$added_policy" = no ] || rm -f "$policy"
    [ "$status" -eq 0 ] || fail "apt-get could not install slurm-wlm and munge (exit $status)"
    for cmd in munged slurmctld slurmd sbatch; do
        command -v "$cmd" >/dev/null || fail "$cmd still missing after installing slurm-wlm and munge"
    done
fi
echo "test-slurm: $(slurmctld -V), munge $(munged --version 2>&1 | awk '{print $2; exit}')"

# Build before any daemon runs: the test binary and the p2sbench binary the jobs call.
cargo test --test cluster --no-run

work=$(mktemp -d /tmp/p2sbench-slurm.XXXXXX)
chmod 700 "$work"
conf="$work/slurm.conf"
pids=()

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    unset SLURM_CONF
    if [ "${#pids[@]}" -gt 0 ] && [ -n "${slurmctld_pid:-}" ] && kill -0 "$slurmctld_pid" 2>/dev/null; then
        # Jobs first (slurmstepd outlives slurmd), then the daemons.
        SLURM_CONF="$conf" scancel --quiet --partition=p2sbench 2>/dev/null
        for _ in $(seq 60); do
            [ -z "$(SLURM_CONF="$conf" squeue -h -o %i 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # Anything left that a job of this cluster started (its environment names our slurm.conf).
    for env in /proc/[0-9]*/environ; do
        pid=${env#/proc/}
        pid=${pid%/environ}
        if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -qx "SLURM_CONF=$conf"; then
            echo "test-slurm: stopping leftover process $pid ($({ tr '\0' ' ' </proc/"$pid"/cmdline; } 2>/dev/null))"
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    if [ "$status" -ne 0 ]; then
        for log in "$work"/*.log; do
            [ -e "$log" ] || continue
            echo "---- last lines of $(basename "$log")"
            tail -n 25 "$log"
        done
    fi
    rm -rf "$work"
    echo "test-slurm: cluster stopped"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_ports() {
    python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])'
}
read -r ctld_port slurmd_port < <(free_ports)
host=$(hostname -s)
cpus=4 # more than the cores if need be (config_overrides): the test runs three tasks at once

dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge.key"
mkdir -p "$work/state" "$work/spool"
# cred_expire: a requeued job waits that long before it starts again (default 120 s).
cat >"$conf" <<EOF
ClusterName=p2sbench-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge.socket,cred_expire=10
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=30
MinJobAge=600
NodeName=p2sbench-node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN
PartitionName=p2sbench Nodes=p2sbench-node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$conf"

munged --foreground --force --key-file="$work/munge.key" --socket="$work/munge.socket" \
    --pid-file="$work/munged.pid" --log-file="$work/munged.log" --seed-file="$work/munged.seed" &
pids+=($!)
for _ in $(seq 50); do
    [ -S "$work/munge.socket" ] && break
    sleep 0.1
done
[ -S "$work/munge.socket" ] || fail "munged did not start"
slurmctld -D -f "$conf" &
slurmctld_pid=$!
pids+=("$slurmctld_pid")
slurmd -D -f "$conf" -N p2sbench-node &
pids+=($!)
state=
for _ in $(seq 120); do
    state=$(sinfo -h -n p2sbench-node -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
[ "$state" = idle ] || fail "the node did not come up (sinfo state: '${state:-none}')"
echo "test-slurm: one-node cluster up (slurmctld :$ctld_port, slurmd :$slurmd_port, state in $work)"

started=$(date +%s)
cargo test --test cluster -- --ignored --exact --nocapture --test-threads=1 \
    slurm_job_array_trains_every_trial_once_resumes_cancelled_tasks_and_renders_the_report
echo "test-slurm: passed in $(($(date +%s) - started)) s"
