#!/usr/bin/env bash
# A throw-away single-node Slurm cluster for tests/test_slurm.py (Debian packages, no systemd).
#
#   tests/slurm/cluster.sh check          exit 0 when the Slurm, munge and MariaDB programs are installed
#   tests/slurm/cluster.sh install        apt-get install them (root, apt, network to the Debian mirror)
#   tests/slurm/cluster.sh start          start munged, mariadbd, slurmdbd, slurmctld and slurmd as
#                                         background processes under a new run folder; print the folder
#   tests/slurm/cluster.sh stop RUN_DIR   cancel the cluster's jobs, stop exactly those daemons
#
# Everything of a cluster lives in its run folder (/tmp/xaipipe-slurm.XXXXXX): configs (etc/), munge key
# and socket, database, Slurm state, logs (log/), PID files (pids/). Ports are free ones picked at start,
# so an existing Slurm, munge or MariaDB on the machine is neither used nor touched. Clients find the
# cluster through SLURM_CONF=RUN_DIR/etc/slurm.conf and PATH=RUN_DIR/bin:$PATH (RUN_DIR/env). As root.
#
# Exit status: 0 ok, 3 cannot be done here (not root, no apt-get, packages unavailable), 1 failure.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
PROGRAMS=(slurmctld slurmd slurmdbd sbatch sacct sinfo scontrol squeue scancel srun munged mungekey munge
          mariadbd mariadb-install-db mariadb mariadb-admin)
PY=${PYTHON:-python3}
GPU_TYPE=ci      # the placeholder GPU's model name (gpu_model in the config)

die() {  # die CODE MESSAGE
    echo "cluster.sh: $2" >&2
    exit "$1"
}

missing_programs() {
    local p miss=()
    for p in "${PROGRAMS[@]}"; do
        command -v "$p" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null 2>&1 ||
            miss+=("$p")
    done
    echo "${miss[*]}"
}

cmd_check() {
    local miss
    miss=$(missing_programs)
    [ -z "$miss" ] || die 3 "not installed: $miss (install: sudo $0 install)"
}

cmd_install() {
    [ "$(id -u)" = 0 ] || die 3 "installing the Slurm packages needs root"
    command -v apt-get >/dev/null 2>&1 || die 3 "no apt-get (the test cluster uses Debian's packages)"
    export DEBIAN_FRONTEND=noninteractive
    # never let the packages' init scripts start system daemons (containers have no init system);
    # a policy-rc.d that a container image already has is left as it is
    local policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    local apt=(apt-get -q -o Acquire::Retries=1 -o Acquire::http::Timeout=20 -o Dpkg::Use-Pty=0)
    timeout 300 "${apt[@]}" update >&2 || die 3 "apt-get update failed (no network to the Debian mirror?)"
    timeout 900 "${apt[@]}" install -y --no-install-recommends "${PACKAGES[@]}" >&2 ||
        die 3 "apt-get install ${PACKAGES[*]} failed"
    cmd_check
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s
    local seconds=$1 what=$2 end
    shift 2
    end=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "cluster.sh: $what not ready after ${seconds}s" >&2; return 1; }
        sleep 0.2
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_idle() { [ "$(sinfo -h -o %T)" = idle ]; }

fill() {  # fill TEMPLATE OUT: replace the @NAME@ placeholders
    sed -e "s|@RUN@|$RUN|g" -e "s|@HOST@|$HOST|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" \
        -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@DB_PORT@|$DB_PORT|g" \
        -e "s|@DB_PASS@|$DB_PASS|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
        -e "s|@GPU_TYPE@|$GPU_TYPE|g" "$1" >"$2"
}

launch() {  # launch NAME COMMAND...: start a daemon in its own session, record its PID
    local name=$1
    shift
    setsid "$@" </dev/null >"$RUN/log/$name.out" 2>&1 &
    echo $! >"$RUN/pids/$(ls "$RUN/pids" | wc -l)-$name.pid"
}

cmd_start() {
    [ "$(id -u)" = 0 ] || die 3 "the test cluster's daemons run as root"
    cmd_check
    export PATH="$PATH:/usr/sbin:/sbin"
    RUN=$(mktemp -d /tmp/xaipipe-slurm.XXXXXX)
    chmod 755 "$RUN"  # munged requires every folder above its socket to be world-executable
    mkdir -p "$RUN"/{etc,log,pids,run,state,spool,munge,mysql}
    STARTED=0
    trap 'start_failed' EXIT
    HOST=$(hostname -s)
    CPUS=$(nproc)
    MEM_MB=65536
    CTLD_PORT=$(free_port)
    SLURMD_PORT=$(free_port)
    DBD_PORT=$(free_port)
    DB_PORT=$(free_port)
    DB_PASS=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
    fill "$HERE/slurm.conf.in" "$RUN/etc/slurm.conf"
    fill "$HERE/gres.conf.in" "$RUN/etc/gres.conf"
    fill "$HERE/slurmdbd.conf.in" "$RUN/etc/slurmdbd.conf"
    chmod 600 "$RUN/etc/slurmdbd.conf"
    export SLURM_CONF="$RUN/etc/slurm.conf"  # slurmdbd reads slurmdbd.conf beside it
    # Clients find the cluster through SLURM_CONF. Inside a job, the jobstep executor of
    # snakemake-executor-plugin-slurm drops every SLURM_* variable before its `srun` (a real site keeps
    # its config at /etc/slurm, where srun looks next); an srun first on PATH restores the variable.
    mkdir -p "$RUN/bin"
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$RUN/bin/srun"
    chmod 755 "$RUN/bin/srun"
    printf 'SLURM_CONF=%s\nPATH_PREFIX=%s\n' "$SLURM_CONF" "$RUN/bin" >"$RUN/env"

    # munge: a private key and socket
    mungekey --create --keyfile="$RUN/munge/munge.key"
    launch munged munged --foreground --force --socket="$RUN/munge/munge.socket" \
        --key-file="$RUN/munge/munge.key" --pid-file="$RUN/munge/munged.pid" \
        --log-file="$RUN/log/munged.log" --seed-file="$RUN/munge/munged.seed"
    wait_for 20 munged munge -S "$RUN/munge/munge.socket" -n

    # MariaDB for slurmdbd: a private data folder, TCP on 127.0.0.1 only
    mariadb-install-db --no-defaults --datadir="$RUN/mysql/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db >"$RUN/log/mariadb-install.out" 2>&1
    launch mariadbd mariadbd --no-defaults --user=root --datadir="$RUN/mysql/data" \
        --socket="$RUN/mysql/mysqld.sock" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$RUN/mysql/mysqld.pid" --log-error="$RUN/log/mariadbd.log" \
        --innodb-lock-wait-timeout=900
    wait_for 60 mariadbd mariadb-admin --no-defaults --socket="$RUN/mysql/mysqld.sock" ping
    mariadb --no-defaults --socket="$RUN/mysql/mysqld.sock" -e \
        "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

    launch slurmdbd slurmdbd -D
    wait_for 60 slurmdbd port_open "$DBD_PORT"
    launch slurmctld slurmctld -D -i -f "$SLURM_CONF"
    wait_for 60 slurmctld scontrol ping
    launch slurmd slurmd -D -f "$SLURM_CONF"
    wait_for 90 "the node" node_idle
    # smoke test: one job step runs
    srun -t 1 -n 1 true >"$RUN/log/srun-smoke.out" 2>&1
    STARTED=1
    echo "$RUN"
}

start_failed() {  # EXIT trap of start: on failure show the logs and stop what was started
    [ "$STARTED" = 1 ] && return
    echo "cluster.sh: start failed (node state: $(sinfo -h -o %T 2>/dev/null || echo '?')); logs in $RUN/log:" >&2
    local f
    for f in "$RUN"/log/*; do
        [ "${f##*/}" = mariadb-install.out ] || { echo "==> $f <==" && tail -n 15 "$f"; } >&2
    done
    (cmd_stop "$RUN") >&2 || true
    exit 1
}

# PID belongs to the cluster of RUN: its command line or environment names the run folder
ours() { grep -qsF "$RUN" "/proc/$1/cmdline" "/proc/$1/environ"; }

leftover_jobs() {  # PIDs of job steps and job processes of RUN that are still alive
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && ours "$p" || continue
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ] ||
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^SLURM_JOB_ID='; then
            echo "$p"
        fi
    done
    return 0
}

stop_daemons() {  # stop_daemons RUN NAME...: SIGTERM the named daemons of RUN at once, wait for them
    local run=$1 name f pid pids=()
    shift
    for name in "$@"; do
        for f in "$run"/pids/*-"$name".pid; do
            [ -f "$f" ] || continue
            pid=$(cat "$f")
            if kill -0 "$pid" 2>/dev/null && ours "$pid"; then
                kill -TERM "$pid"
                pids+=("$pid")
            fi
            rm -f "$f"
        done
    done
    for pid in "${pids[@]}"; do
        wait_for 30 "process $pid to stop" eval "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    done
}

cmd_stop() {
    RUN=${1:?usage: cluster.sh stop RUN_DIR}
    [ -f "$RUN/env" ] || die 1 "$RUN is not a cluster run folder"
    local conf="$RUN/etc/slurm.conf" left
    PATH="$PATH:/usr/sbin:/sbin"
    # cancel what is still queued or running, while slurmctld is up
    if SLURM_CONF=$conf scontrol ping >/dev/null 2>&1; then
        SLURM_CONF=$conf scancel --full $(SLURM_CONF=$conf squeue -h -o %i 2>/dev/null) >/dev/null 2>&1 || true
        wait_for 20 "job cancellation" eval "[ -z \"\$(SLURM_CONF=$conf squeue -h -o %i)\" ]" || true
    fi
    # the Slurm daemons first, then the database and munged (the Slurm daemons talk to both on exit)
    stop_daemons "$RUN" slurmd slurmctld slurmdbd
    stop_daemons "$RUN" mariadbd munged
    # job steps detach from slurmd; after a cancellation they end by themselves, this is the fallback
    left=$(leftover_jobs)
    if [ -n "$left" ]; then
        kill -KILL $left 2>/dev/null || true
        sleep 0.5
        left=$(leftover_jobs)
        [ -z "$left" ] || die 1 "job processes of $RUN still alive: $left"
    fi
}

case "${1:-}" in
    check) cmd_check ;;
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    *) die 1 "usage: $0 check|install|start|stop RUN_DIR" ;;
esac
