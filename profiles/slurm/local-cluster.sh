#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, to try profiles/slurm on a laptop and
# in CI:   profiles/slurm/local-cluster.sh up | down | status
# Needs root and Debian's slurmctld, slurmd, slurm-client and munge (`make slurm` installs them
# and calls this script).
# State, logs and slurm.conf live in $SARISE_SLURM_DIR (default /tmp/sarise-slurm); the
# partition is `debug`, the node this host with all its cores and memory. slurmctld writes a
# line per finished job (id, name, state, exit code, work dir) to $SARISE_SLURM_DIR/log/jobcomp.log.
set -euo pipefail
DIR="${SARISE_SLURM_DIR:-/tmp/sarise-slurm}"
CONF="$DIR/slurm.conf"

up() {
    for cmd in slurmctld slurmd munged sinfo; do
        command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || {
            echo "local-cluster: $cmd is missing (make slurm)" >&2; exit 1; }
    done
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "SLURM already up"; return; fi
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    if ! pgrep -x munged >/dev/null; then
        [ -s /etc/munge/munge.key ] || /usr/sbin/mungekey --create --force >/dev/null 2>&1 \
            || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
        install -d -o munge -g munge /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    local host node
    host="$(hostname -s)"
    node="$(slurmd -C | head -1 | sed -E 's/ UpTime=.*//')"
    cat > "$CONF" <<CONF
ClusterName=sarise
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting database: the scheduler's record of every finished job is this file
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
${node} NodeAddr=127.0.0.1
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
    mkdir -p /etc/slurm
    ln -sf "$CONF" /etc/slurm/slurm.conf  # where the client commands look
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "SLURM up: $(sinfo -h)"; return; fi
        sleep 0.5
    done
    echo "local-cluster: SLURM did not come up; see $DIR/log" >&2
    exit 1
}

down() {
    scancel --user="$(id -un)" 2>/dev/null || true
    for pid in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    echo "SLURM down"
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    status) sinfo && squeue ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
