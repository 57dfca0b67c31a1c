#!/usr/bin/env bash
# Starts (or stops) a local Slurm 22.05 cluster for Cumulo's driver-slurm tests: munge, slurmctld,
# 64 slurmd daemons for nodes node001..node064 (32 CPUs, 8 fake H100 GPUs each, all on this host)
# and slurmrestd with JWT on 127.0.0.1:6820.
#
#   scripts/dev-slurm.sh start   # idempotent; installs the Debian packages when missing
#   scripts/dev-slurm.sh stop    # stops only the daemons this script started (by recorded pid)
#   scripts/dev-slurm.sh status
#
# `start` prints `export NAME=value` lines on stdout (eval them), and the same lines are in
# `$CUMULO_SLURM_DIR/env` (default /tmp/cumulo-slurm/env, for `source`); they export
# SLURM_CONF and CUMULO_TEST_SLURM_URL / _USER / _TOKEN / _CONF / _WORKDIR for the tests.
set -euo pipefail

DIR="${CUMULO_SLURM_DIR:-/tmp/cumulo-slurm}"
NODES="${CUMULO_SLURM_NODES:-64}"
REST_ADDR="${CUMULO_SLURM_REST_ADDR:-127.0.0.1:6820}"
JOB_USER="${CUMULO_SLURM_JOB_USER:-cumulo}"
CONF="$DIR/etc/slurm.conf"
PIDS="$DIR/started.pids" # "<name> <pid>" per daemon this script started

log() { echo "dev-slurm: $*" >&2; }

node_name() { printf 'node%03d' "$1"; }

install_if_missing() {
  if command -v slurmctld >/dev/null && command -v slurmrestd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null; then
    return
  fi
  log "installing slurm-wlm slurmrestd munge slurm-client"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm slurmrestd munge slurm-client >"$DIR/apt.log" 2>&1; then
    apt-get update -q >>"$DIR/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm slurmrestd munge slurm-client >>"$DIR/apt.log" 2>&1
  fi
}

record() { echo "$1 $2" >>"$PIDS"; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}

start_munge() {
  if munge -n >/dev/null 2>&1; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey -c -f -k /etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munge munge -n
  record munged "$(cat /run/munge/munged.pid)"
}

write_config() {
  mkdir -p "$DIR"/{etc,run,log,spool,state,dev,work}
  chmod 1777 "$DIR/work"
  for i in 0 1 2 3 4 5 6 7; do ln -sfn /dev/null "$DIR/dev/nvidia$i"; done
  if [ ! -s "$DIR/etc/jwt_hs256.key" ]; then
    head -c 32 /dev/urandom >"$DIR/etc/jwt_hs256.key"
  fi
  chmod 600 "$DIR/etc/jwt_hs256.key"
  local last
  last=$(printf '%03d' "$NODES")
  cat >"$CONF" <<EOF
ClusterName=cumulo-dev
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmctldPort=16817
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmdSpoolDir=$DIR/spool/%n
SlurmdPidFile=$DIR/run/slurmd-%n.pid
StateSaveLocation=$DIR/state
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=10
MinJobAge=600
MaxJobCount=100000
SchedulerParameters=defer
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/etc/jwt_hs256.key
EOF
  # One line per node: a feature named after the node lets slurmrestd (which refuses
  # required_nodes) pin Cumulo's chosen nodes; block-N groups 8 nodes into a network block.
  local i n
  for i in $(seq 1 "$NODES"); do
    n=$(node_name "$i")
    echo "NodeName=$n NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=32 Boards=1 SocketsPerBoard=2 CoresPerSocket=16 ThreadsPerCore=1 RealMemory=256000 Gres=gpu:h100:8 Features=$n,block-$(((i - 1) / 8))" >>"$CONF"
  done
  echo "PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >>"$CONF"
  # Two small partitions of nodes no other test pins: the control-loop failover test runs a gang
  # in one, kills its slurmds, and expects it re-placed in the other.
  if [ "$NODES" -ge 58 ]; then
    echo "PartitionName=failover-a Nodes=node[055-056] Default=NO MaxTime=INFINITE State=UP" >>"$CONF"
    echo "PartitionName=failover-b Nodes=node[057-058] Default=NO MaxTime=INFINITE State=UP" >>"$CONF"
  fi
  cat >"$DIR/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=node[001-$last] Name=gpu Type=h100 File=$DIR/dev/nvidia[0-7]
EOF
}

ensure_users() {
  id slurmrest >/dev/null 2>&1 || useradd --system --no-create-home slurmrest
  id "$JOB_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$JOB_USER"
}

start() {
  mkdir -p "$DIR"
  touch "$PIDS"
  install_if_missing
  ensure_users
  start_munge
  local before
  before=$(cat "$CONF" "$DIR/etc/gres.conf" 2>/dev/null | md5sum)
  write_config
  export SLURM_CONF="$CONF"
  if alive "$(cat "$DIR/run/slurmctld.pid" 2>/dev/null)"; then
    # A running controller reads a changed configuration (new partitions) without a restart.
    if [ "$before" != "$(cat "$CONF" "$DIR/etc/gres.conf" | md5sum)" ]; then
      log "configuration changed: scontrol reconfigure"
      scontrol reconfigure
    fi
  else
    # A fresh start clears old jobs (-c); restarting a controller this script started and that
    # died keeps its saved jobs, as a real controller restart does.
    local clean=-c
    grep -q '^slurmctld ' "$PIDS" && clean=
    slurmctld -f "$CONF" $clean -i
    wait_for 20 slurmctld scontrol ping
    record slurmctld "$(cat "$DIR/run/slurmctld.pid")"
  fi
  for i in $(seq 1 "$NODES"); do
    local n
    n=$(node_name "$i")
    if ! alive "$(cat "$DIR/run/slurmd-$n.pid" 2>/dev/null)"; then
      # A slurmd of ours still running without its pid file (removed by a stop elsewhere):
      # adopt it instead of starting a second one on the same port.
      local running
      running=$(pgrep -f "^slurmd -f $CONF -N $n\$" | head -1 || true)
      if [ -n "$running" ]; then
        echo "$running" >"$DIR/run/slurmd-$n.pid"
        continue
      fi
      slurmd -f "$CONF" -N "$n"
      for _ in $(seq 1 50); do [ -s "$DIR/run/slurmd-$n.pid" ] && break; sleep 0.1; done
      record "slurmd-$n" "$(cat "$DIR/run/slurmd-$n.pid")"
    fi
  done
  wait_for 60 "$NODES idle nodes" bash -c "[ \$(sinfo -h -N -t idle,mix,alloc -o '%N' | sort -u | wc -l) -ge $NODES ]"
  if ! alive "$(cat "$DIR/run/slurmrestd.pid" 2>/dev/null)"; then
    SLURM_JWT=daemon nohup slurmrestd -f "$CONF" -u slurmrest -a rest_auth/jwt -s openapi/v0.0.38 "$REST_ADDR" \
      >"$DIR/log/slurmrestd.log" 2>&1 &
    echo $! >"$DIR/run/slurmrestd.pid"
    record slurmrestd $!
  fi
  wait_for 20 slurmrestd bash -c "curl -s -o /dev/null -w '%{http_code}' http://$REST_ADDR/slurm/v0.0.38/ping | grep -q '^[245]'"
  local token
  token=$(scontrol token username="$JOB_USER" lifespan=86400 | sed -n 's/^SLURM_JWT=//p')
  cat >"$DIR/env" <<EOF
export SLURM_CONF=$CONF
export CUMULO_TEST_SLURM_CONF=$CONF
export CUMULO_TEST_SLURM_URL=http://$REST_ADDR
export CUMULO_TEST_SLURM_USER=$JOB_USER
export CUMULO_TEST_SLURM_TOKEN=$token
export CUMULO_TEST_SLURM_WORKDIR=$DIR/work
EOF
  log "up: $NODES nodes, slurmrestd on $REST_ADDR; source $DIR/env"

}

stop() {
  [ -f "$PIDS" ] || { log "nothing recorded in $PIDS"; return 0; }
  # Reverse order: slurmrestd, slurmds, slurmctld, munged.
  tac "$PIDS" | while read -r name pid; do
    if alive "$pid"; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 50); do
    local any=0
    while read -r _ pid; do alive "$pid" && any=1; done <"$PIDS"
    [ "$any" = 0 ] && break
    sleep 0.1
  done
  while read -r _ pid; do alive "$pid" && kill -9 "$pid" 2>/dev/null; done <"$PIDS" || true
  rm -f "$PIDS" "$DIR"/run/*.pid
  log "stopped"
}

status() {
  [ -f "$PIDS" ] || { echo "not started"; return 0; }
  while read -r name pid; do
    if alive "$pid"; then echo "$name $pid up"; else echo "$name $pid down"; fi
  done <"$PIDS"
}

case "${1:-}" in
  start) start >&2 && cat "$DIR/env" ;; # stdout: only the `export NAME=value` lines
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
