# Shared by slurm/*.sbatch (sourced, not submitted). Bash.
#
# Environment (all optional):
#   PIPELINE_REPO          the repository (default: found from the submitted script's path)
#   PIPELINE_VENV          virtual environment to activate (default: $PIPELINE_REPO/.venv;
#                          "none": use the python already on PATH, e.g. from a module or conda)
#   PIPELINE_MAX_REQUEUES  how often a job may requeue itself before the time limit (default 20)
#   PIPELINE_STOP_GRACE    seconds a stopped stage gets to checkpoint before SIGKILL (default 90)
#   PIPELINE_RAY_PORT, PIPELINE_RAY_HEAD_IP, PIPELINE_RAY_TIMEOUT, PIPELINE_RAY_TMPDIR,
#   RAY_AUTH_MODE / RAY_AUTH_TOKEN: see ray_up

pipeline_log() { printf '[pipeline %s job %s] %s\n' "$(date +%H:%M:%S)" "${SLURM_JOB_ID:-none}" "$*" >&2; }
pipeline_die() { pipeline_log "error: $*"; exit 2; }

# pipeline_abspath PATH: PATH made absolute against the job's working directory (the
# directory sbatch ran in, unless --chdir), where the user typed it.
pipeline_abspath() { if [[ $1 == /* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$PWD/$1"; fi; }

# pipeline_setup: the virtual environment and its installed rl-pipeline, thread counts.
pipeline_setup() {
  local venv=${PIPELINE_VENV:-$PIPELINE_REPO/.venv}
  if [[ $venv != none ]]; then
    [[ -f $venv/bin/activate ]] || pipeline_die "no virtual environment at $venv: run 'make venv' in $PIPELINE_REPO, or set PIPELINE_VENV (none: use the python on PATH)"
    set +u
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    set -u
  fi
  command -v python >/dev/null || pipeline_die "no python on PATH (PIPELINE_VENV=$venv)"
  # the installed entry point, not the repository on PYTHONPATH: a data.py in the job's working
  # directory cannot shadow the package, and Ray workers import what is installed
  command -v rl-pipeline >/dev/null ||
    pipeline_die "rl-pipeline is not installed in this environment (PIPELINE_VENV=$venv): run 'make venv' in $PIPELINE_REPO, or pip install -e $PIPELINE_REPO"
  export PYTHONUNBUFFERED=1
  if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then  # torch and friends otherwise assume the whole node
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
  fi
  pipeline_log "${SLURM_JOB_NAME:-job} on ${SLURM_JOB_NODELIST:-$(hostname)}" \
    "(restart ${SLURM_RESTART_COUNT:-0}${SLURM_ARRAY_TASK_ID:+, array task $SLURM_ARRAY_TASK_ID}); python: $(command -v python)"
}

# pipeline_run CMD...: run CMD in the background, so that signals reach this shell at once
# (bash runs a trap only after the foreground command ends), and wait for it.
#   SIGUSR1 (sbatch --signal=B:USR1@N: N seconds before the time limit): stop CMD and
#           requeue this job, which then resumes (train: --resume from the last checkpoint;
#           evaluate: generation continues where it stopped).
#   SIGTERM (scancel, preemption): stop CMD and exit; Slurm itself requeues a preempted
#           job submitted with --requeue.
# Returns CMD's exit status.
pipeline_run() {
  _pipeline_signal='' _pipeline_killer=''
  trap '_pipeline_signal=USR1; _pipeline_stop' USR1
  trap '_pipeline_signal=TERM; _pipeline_stop' TERM
  pipeline_log "running: $*"
  "$@" &
  _pipeline_pid=$!
  local rc
  while :; do
    if wait "$_pipeline_pid"; then rc=0; else rc=$?; fi
    # a trapped signal ends `wait` early (status > 128) while CMD may still run: wait again
    kill -0 "$_pipeline_pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  [[ -z $_pipeline_killer ]] || kill "$_pipeline_killer" 2>/dev/null || true
  if [[ $_pipeline_signal == USR1 && $rc != 0 ]]; then
    pipeline_requeue
  elif [[ $_pipeline_signal == TERM ]]; then
    pipeline_log "stopped by SIGTERM (cancelled or preempted; a preempted --requeue job is requeued by Slurm)"
    exit 143
  fi
  return "$rc"
}

# SIGTERM to CMD (training finishes its step, writes a checkpoint and exits 143); SIGKILL
# PIPELINE_STOP_GRACE seconds later (default 90) if it is still there: a step or handler that
# hangs must not use up the time left before the limit, when Slurm would kill the job
# unrequeued. Keep it below the --signal=B:USR1@N lead time.
_pipeline_stop() {
  kill -TERM "$_pipeline_pid" 2>/dev/null || true
  if [[ -z $_pipeline_killer ]]; then
    { sleep "${PIPELINE_STOP_GRACE:-90}"; kill -KILL "$_pipeline_pid" 2>/dev/null; } &
    _pipeline_killer=$!
  fi
}

# pipeline_requeue: put this job back in the queue (it restarts from the top of its script).
pipeline_requeue() {
  local n=${SLURM_RESTART_COUNT:-0} max=${PIPELINE_MAX_REQUEUES:-20}
  [[ -n ${SLURM_JOB_ID:-} ]] || { pipeline_log "error: SIGUSR1 outside a Slurm job: nothing to requeue"; exit 1; }
  if (( n >= max )); then
    pipeline_log "error: time limit near and this job was requeued $n times already (PIPELINE_MAX_REQUEUES=$max): giving up"
    exit 1
  fi
  pipeline_log "time limit near (SIGUSR1): stopped the stage; requeueing job $SLURM_JOB_ID (restart $((n + 1)))"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    pipeline_log "error: scontrol requeue $SLURM_JOB_ID failed"
    exit 1
  fi
  exit 0
}

# --- Ray over the job's nodes (the verl engine) ----------------------------------------
# ray_up: a Ray head on this node (the batch host, the job's first node) and one worker on
# each other node, each a background `srun --overlap` step running `ray start --block`;
# then waits until every node has joined, at most PIPELINE_RAY_TIMEOUT seconds (default
# 300). Exports RAY_ADDRESS. Ports come from the job id (PIPELINE_RAY_PORT: the GCS port;
# +1 Ray client server, +2/+3 dashboard agent on the head/workers), so two jobs sharing a
# node do not collide.
ray_up() {
  local head nodes workers cpus port tmp
  command -v ray >/dev/null || pipeline_die "no 'ray' command in this environment (install verl's dependencies)"
  head=${SLURMD_NODENAME:-$(hostname -s)}
  mapfile -t nodes < <(scontrol show hostnames "${SLURM_JOB_NODELIST:-$head}")
  workers=()
  local n
  for n in "${nodes[@]}"; do [[ $n == "$head" ]] || workers+=("$n"); done
  RAY_NODES=$(( ${#workers[@]} + 1 ))
  cpus=${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}
  port=${PIPELINE_RAY_PORT:-$(( 20000 + (${SLURM_JOB_ID:-0} % 2000) * 4 ))}
  tmp=${PIPELINE_RAY_TMPDIR:-/tmp/ray-${SLURM_JOB_ID:-$$}}
  RAY_HEAD_IP=${PIPELINE_RAY_HEAD_IP:-$(python -c 'import ray.util; print(ray.util.get_node_ip_address())')}
  export RAY_ADDRESS=$RAY_HEAD_IP:$port
  # Ray turns token authentication on where ~/.ray/auth_token exists (any local ray.init() writes
  # one) and nodes that disagree cannot connect: every step of this job gets the same mode and a
  # per-job token through the environment srun passes on (RAY_AUTH_MODE=disabled opts out).
  export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
  if [[ $RAY_AUTH_MODE == token && -z ${RAY_AUTH_TOKEN:-} && -z ${RAY_AUTH_TOKEN_PATH:-} ]]; then
    RAY_AUTH_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(32))')
    export RAY_AUTH_TOKEN
  fi
  local common=(--block --disable-usage-stats --temp-dir="$tmp" --num-cpus="$cpus")
  pipeline_log "starting Ray: head $head ($RAY_ADDRESS), ${#workers[@]} worker node(s), $cpus CPUs each, temp dir $tmp"
  srun --overlap --nodes=1 --ntasks=1 --cpus-per-task="$cpus" -w "$head" \
    ray start --head --node-ip-address="$RAY_HEAD_IP" --port="$port" --ray-client-server-port=$((port + 1)) \
    --dashboard-agent-listen-port=$((port + 2)) --include-dashboard=false "${common[@]}" &
  RAY_HEAD_PID=$!
  RAY_WORKERS_PID=
  if (( ${#workers[@]} > 0 )); then
    local wl
    wl=$(IFS=,; echo "${workers[*]}")
    srun --overlap --nodes=${#workers[@]} --ntasks=${#workers[@]} --ntasks-per-node=1 --cpus-per-task="$cpus" -w "$wl" \
      ray start --address="$RAY_ADDRESS" --dashboard-agent-listen-port=$((port + 3)) "${common[@]}" &
    RAY_WORKERS_PID=$!
  fi
  ray_wait "$RAY_NODES"
}

# ray_wait N: until N nodes are alive in the cluster at RAY_ADDRESS (or give up).
ray_wait() {
  local want=$1 timeout=${PIPELINE_RAY_TIMEOUT:-300} have=0 start=$SECONDS
  while :; do
    have=$(timeout 60 python - "$RAY_ADDRESS" 2>/dev/null <<'PY' | tail -n 1
import sys
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
) || have=0
    [[ $have =~ ^[0-9]+$ ]] || have=0
    if (( have >= want )); then
      pipeline_log "Ray cluster ready: $have of $want node(s) at $RAY_ADDRESS after $((SECONDS - start)) s"
      return 0
    fi
    kill -0 "$RAY_HEAD_PID" 2>/dev/null || pipeline_die "the Ray head exited before the cluster was ready (see above)"
    if [[ -n ${RAY_WORKERS_PID:-} ]] && ! kill -0 "$RAY_WORKERS_PID" 2>/dev/null; then
      pipeline_die "the Ray workers' srun step exited before the cluster was ready (see above)"
    fi
    (( SECONDS - start < timeout )) || pipeline_die "Ray: $have of $want node(s) joined in $timeout s (PIPELINE_RAY_TIMEOUT)"
    sleep 2
  done
}

# ray_down: stop the Ray steps (Slurm signals their processes, then kills what is left).
ray_down() {
  local pid
  for pid in ${RAY_WORKERS_PID:-} ${RAY_HEAD_PID:-}; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in ${RAY_WORKERS_PID:-} ${RAY_HEAD_PID:-}; do
    wait "$pid" 2>/dev/null || true
  done
  RAY_WORKERS_PID='' RAY_HEAD_PID=''
  pipeline_log "Ray stopped"
}
