#!/usr/bin/env bash
# Runs Gavel's own simulator (stanford-futuredata/gavel, OSDI'20) on the Gavel traces and clusters of
# examples/gavel/, to give Cumulo's figures in examples/gavel/RESULTS.md their reference column.
#
#   scripts/gavel-reference.sh GAVEL_SCHEDULER_DIR [TIMEOUT_S] [POLICY...]
#
# GAVEL_SCHEDULER_DIR is a copy of Gavel's `scheduler/` folder (commit c4fa400, MIT) with
# scripts/drivers/simulate_scheduler_with_trace.py, kept OUTSIDE this repository: Gavel's code is not
# part of Cumulo and is never committed here. Its Python ($GAVEL_PYTHON, default
# GAVEL_SCHEDULER_DIR/../venv/bin/python) needs cvxpy, ecos, numpy and scipy from PyPI.
# Each run is Gavel's driver with the settings of its physical-cluster instructions (seed 0, ECOS,
# 360-second rounds): physical_cluster traces on 8 V100 + 16 P100 + 24 K80 with
# physical_cluster_throughputs.json, msr traces on 36:36:36 with simulation_throughputs.json.
# Two adaptations are made here, in a scratch folder, never in the data:
#  - the msr traces are in Gavel's legacy 7-field format, which its parse_trace() at c4fa400 no
#    longer reads: they are rewritten in the 10-field format (same job type, steps, GPUs, arrival);
#  - Gavel's throughput tables lack some (job type, scale factor) pairs the msr traces use (scale 16
#    and 24, and a few smaller): the missing isolated entries are added with Cumulo's own rule (the
#    largest measured scale below, scaled linearly), so both simulators see the same speeds.
# Prints one TSV row per trace and policy: average JCT in hours over finished jobs, jobs finished,
# makespan, wall seconds. A run past TIMEOUT_S (default 1800) is reported as not finished.
set -euo pipefail
cd "$(dirname "$0")/.."

GAVEL="${1:?usage: scripts/gavel-reference.sh GAVEL_SCHEDULER_DIR [TIMEOUT_S] [POLICY...]}"
GAVEL="$(cd "$GAVEL" && pwd)"
TIMEOUT_S="${2:-1800}"
shift $(( $# >= 2 ? 2 : $# ))
POLICIES=("$@")
if [ ${#POLICIES[@]} -eq 0 ]; then
  POLICIES=(max_min_fairness_perf max_min_fairness fifo_perf fifo finish_time_fairness_perf
            finish_time_fairness min_total_duration_perf min_total_duration gandiva isolated
            max_sum_throughput_perf)
fi
PY="${GAVEL_PYTHON:-$GAVEL/../venv/bin/python}"
DATA="${CUMULO_DATA_DIR:-../shared/data}/gavel"
[ -d "$DATA/traces" ] || { echo "no Gavel data at $DATA (set CUMULO_DATA_DIR)" >&2; exit 1; }
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# msr traces: 7 fields -> 10 fields; throughput table: add the scales the msr traces need.
"$PY" - "$DATA" "$SCRATCH" <<'EOF'
import json, re, sys
data, out = sys.argv[1], sys.argv[2]
needed = set()
for vc in ['6214e9', 'b436b2']:
    with open('%s/traces/msr/seed=0/%s.trace' % (data, vc)) as f, open('%s/msr-%s.trace' % (out, vc), 'w') as g:
        for line in f:
            jt, cmd, nsa, ndd, steps, arr, sf = line.rstrip('\n').split('\t')
            needed.add((jt, int(sf)))
            g.write('\t'.join([jt, cmd, '', nsa, ndd, steps, sf, '1', '-1.000000', arr]) + '\n')
table = json.load(open('%s/simulation_throughputs.json' % data))
for worker in table:
    have = {}
    for k in table[worker]:
        m = re.match(r"\('(.*)', (\d+)\)", k)
        have[(m.group(1), int(m.group(2)))] = table[worker][k]['null']
    for jt, s in sorted(needed - set(have)):
        ks = max(k for (j, k) in have if j == jt and k < s)
        table[worker]["('%s', %d)" % (jt, s)] = {'null': have[(jt, ks)] * s / ks}
json.dump(table, open('%s/simulation_throughputs_msr.json' % out, 'w'))
EOF

run() { # name trace throughputs cluster policy
  local start end rc=0
  start=$(date +%s)
  (cd "$GAVEL" && timeout "$TIMEOUT_S" "$PY" scripts/drivers/simulate_scheduler_with_trace.py \
    -t "$2" -p "$5" --throughputs_file "$3" -c "$4" --num_gpus_per_server 4:4:4 \
    --seed 0 --solver ECOS --time_per_iteration 360 >"$SCRATCH/out" 2>/dev/null) || rc=$?
  end=$(date +%s)
  local jct done_ span
  jct=$(sed -n 's/^Average job completion time: \([0-9.]*\) seconds.*/\1/p' "$SCRATCH/out" | awk '{printf "%.3f", $1/3600}')
  # get_average_jct() prints one "Job N: seconds" line per finished job (failed jobs are left out)
  done_="$(grep -c '^Job [0-9][0-9]*:' "$SCRATCH/out" || true)/$(wc -l <"$2")"
  span=$(sed -n 's/^Total duration: .*(\(.*\) hours)/\1/p' "$SCRATCH/out")
  [ "$rc" = 0 ] || jct="not finished (rc $rc)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$5" "$jct" "$done_" "$span" "$((end - start))"
}

printf 'trace\tpolicy\tavg JCT (h)\tjobs finished\tmakespan (h)\twall (s)\n'
for t in artifact_evaluation max_min_fairness minimize_makespan; do
  for p in "${POLICIES[@]}"; do
    run "physical $t" "$DATA/traces/physical_cluster/$t.trace" "$DATA/physical_cluster_throughputs.json" 8:16:24 "$p"
  done
done
for vc in b436b2 6214e9; do
  for p in "${POLICIES[@]}"; do
    case "$p" in gandiva|*_packed|allox) continue ;; esac # pair tables / single-GPU only: see RESULTS.md
    run "msr $vc" "$SCRATCH/msr-$vc.trace" "$SCRATCH/simulation_throughputs_msr.json" 36:36:36 "$p"
  done
done
