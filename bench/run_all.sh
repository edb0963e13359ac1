#!/usr/bin/env bash
# Run every faceauth benchmark against a stack started for the purpose, then stop it.
#
#   bench/run_all.sh                      # full run: 60 s per concurrency level, a 10-minute memory soak (about 20-22 minutes)
#   BENCH_DURATION=10 BENCH_REPEATS=5 BENCH_MEMORY_DURATION=60 bench/run_all.sh     # quick smoke run (about 5 minutes)
#   BENCH_STEPS="login profile" bench/run_all.sh             # only some steps (component old login profile ablation gil memory)
#   BENCH_STEPS=memory BENCH_MEMORY_DURATION=60 bench/run_all.sh  # a short memory soak (the full one is 10 minutes)
# Other knobs: BENCH_CONCURRENCY (1,4,16), BENCH_OLD_ROUNDS (3), BENCH_NOTE (stored with the results),
# BENCH_MEMORY_DURATION (600 s), BENCH_MEMORY_CONCURRENCY (8 clients), BENCH_MEMORY_INTERVAL (10 s between RSS samples),
# BENCH_SUFFIX (appended to the result names), RECOGNITION_WORKERS / LIVENESS_WORKERS / AUTH_WEB_WORKERS.
#
# The stack is started the way `make run` does it (`python -m localrun`: migrations, liveness, recognition,
# auth-web under gunicorn, nginx gateway with TLS), on its own ports, database and Redis prefix so it
# does not collide with a `make run` or tests on the same machine. Differences from the default
# configuration, all through the documented environment variables:
#   - the login challenge is pinned to BLINK (AUTH_CHALLENGE_ACTIONS=BLINK, AUTH_CHALLENGE_LENGTH=1): the bench
#     replays a recorded clip, which can only satisfy the action it contains;
#   - the screen flash is off (AUTH_FLASH=false, LIVENESS_CHECKS=sanity,passive,active): a recorded clip cannot
#     reflect a colour sequence drawn per login (that is the point of it). Its cost per Check is measured by the
#     liveness service's own benchmark and the attack suite (`make attacks`);
#   - rate limits, throttling and locks are raised (AUTH_RATE_LIMIT_*, AUTH_LOCKOUT_*, AUTH_THROTTLE_*, GATEWAY_LOGIN_RATE/BURST):
#     one load generator from one address logs one user in hundreds of times a minute, which the defaults
#     rightly stop after a few attempts;
#   - RECOGNITION_WORKERS / LIVENESS_WORKERS default to 2 (one per core) unless set.
# Results: bench/results/*.json and *.md; the stack's log: var/bench/stack.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"

DURATION=${BENCH_DURATION:-60}
REPEATS=${BENCH_REPEATS:-20}
ROUNDS=${BENCH_OLD_ROUNDS:-3}
CONCURRENCY=${BENCH_CONCURRENCY:-1,4,16}
NOTE=${BENCH_NOTE:-}
SUFFIX=${BENCH_SUFFIX:-}
MEMORY_DURATION=${BENCH_MEMORY_DURATION:-600}
MEMORY_CONCURRENCY=${BENCH_MEMORY_CONCURRENCY:-8}
MEMORY_INTERVAL=${BENCH_MEMORY_INTERVAL:-10}
STEPS=${BENCH_STEPS:-component old login profile ablation gil memory}

export FACEAUTH_VAR_DIR=${FACEAUTH_VAR_DIR:-$ROOT/var/bench}
export DATABASE_URL=${BENCH_DATABASE_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/faceauth_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
export AUTH_REDIS_PREFIX=faceauth-bench:
export LIVENESS_LISTEN=127.0.0.1:${BENCH_LIVENESS_PORT:-50061}
export RECOGNITION_LISTEN=127.0.0.1:${BENCH_RECOGNITION_PORT:-50062}
# Each worker's own port (auth-web balances over them), clear of the local run's 50061.. / 50071..
export LIVENESS_WORKER_PORTS_FROM=${LIVENESS_WORKER_PORTS_FROM:-50161}
export RECOGNITION_WORKER_PORTS_FROM=${RECOGNITION_WORKER_PORTS_FROM:-50171}
export AUTH_WEB_LISTEN=127.0.0.1:${BENCH_AUTH_WEB_PORT:-8010}
export LIVENESS_TARGET=$LIVENESS_LISTEN RECOGNITION_TARGET=$RECOGNITION_LISTEN
export GATEWAY_HTTPS_PORT=${BENCH_HTTPS_PORT:-8453}
export GATEWAY_HTTP_PORT=${BENCH_HTTP_PORT:-8090}
export RECOGNITION_WORKERS=${RECOGNITION_WORKERS:-2}
export LIVENESS_WORKERS=${LIVENESS_WORKERS:-2}
export AUTH_WEB_WORKERS=${AUTH_WEB_WORKERS:-2} AUTH_WEB_THREADS=${AUTH_WEB_THREADS:-4}  # auth-web's defaults, recorded
export AUTH_CHALLENGE_ACTIONS=BLINK
export AUTH_CHALLENGE_LENGTH=1
export AUTH_FLASH=false LIVENESS_CHECKS=sanity,passive,active
export LOCALRUN_DEMO_APP=false  # the OIDC demo app is not measured (and its default port is the bench gateway's 8090)
export AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS=1000000/minute
export AUTH_RATE_LIMIT_LOGIN_PER_USERNAME=1000000/minute
export AUTH_RATE_LIMIT_REGISTER_PER_ADDRESS=1000/hour
export AUTH_RATE_LIMIT_ENROLL_PER_USER=1000/hour
export AUTH_LOCKOUT_THRESHOLD=1000000 AUTH_LOCKOUT_ADDRESS_THRESHOLD=1000000
export AUTH_THROTTLE_FREE_ATTEMPTS=1000000 AUTH_THROTTLE_ADDRESS_FREE_ATTEMPTS=1000000
export AUTH_THROTTLE_USERNAME_FREE_ATTEMPTS=1000000
export GATEWAY_LOGIN_RATE=1000r/s
export GATEWAY_LOGIN_BURST=1000
export GATEWAY_ERROR_LOG_LEVEL=error

LIVENESS="$LIVENESS_LISTEN"
RECOGNITION="$RECOGNITION_LISTEN"
BASE_URL="https://127.0.0.1:$GATEWAY_HTTPS_PORT"
mkdir -p "$FACEAUTH_VAR_DIR" bench/results
LOG="$FACEAUTH_VAR_DIR/stack.log"

started=$(date +%s)
echo "starting the bench stack (log: $LOG)"
"$PY" -m localrun >"$LOG" 2>&1 &
STACK_PID=$!
stop_stack() {
  if kill -0 "$STACK_PID" 2>/dev/null; then
    echo "stopping the bench stack"
    kill -TERM "$STACK_PID"
    wait "$STACK_PID" || true
  fi
}
trap stop_stack EXIT

for _ in $(seq 1 600); do
  if grep -q "faceauth is running at" "$LOG"; then break; fi
  if ! kill -0 "$STACK_PID" 2>/dev/null; then
    echo "the stack exited while starting; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
  sleep 1
done
grep -q "faceauth is running at" "$LOG" || { echo "the stack did not get ready in 600 s" >&2; exit 1; }
echo "stack ready after $(($(date +%s) - started)) s"
# The benches call the model services directly, as auth-web does: with its client certificate (mutual TLS; the
# run made the CA under var/bench/grpc-tls/). Exported only now, so that the run made its own certificates.
export GRPC_TLS_CA="$FACEAUTH_VAR_DIR/grpc-tls/auth-web/ca.crt"
export GRPC_CLIENT_TLS_CERT="$FACEAUTH_VAR_DIR/grpc-tls/auth-web/client.crt"
export GRPC_CLIENT_TLS_KEY="$FACEAUTH_VAR_DIR/grpc-tls/auth-web/client.key"
# bench.profile_stages loads both servicers into its own process, whose settings want their servers' certificates.
for service in LIVENESS RECOGNITION; do
  folder="$FACEAUTH_VAR_DIR/grpc-tls/${service,,}"
  export "${service}_TLS_CERT=$folder/server.crt" "${service}_TLS_KEY=$folder/server.key"
done

common=(--liveness "$LIVENESS" --recognition "$RECOGNITION" --note "$NOTE")
for step in $STEPS; do
  echo "=== $step"
  case "$step" in
    component) "$PY" -m bench.component_latency "${common[@]}" --repeats "$REPEATS" --name "component_latency$SUFFIX" ;;
    old) "$PY" -m bench.old_pipeline "${common[@]}" --rounds "$ROUNDS" --name "old_vs_new$SUFFIX" ;;
    login) "$PY" -m bench.login_load "${common[@]}" --base-url "$BASE_URL" --auth-web-port "${AUTH_WEB_LISTEN##*:}" \
      --duration "$DURATION" --concurrency "$CONCURRENCY" --name "login_load$SUFFIX" ;;
    profile) "$PY" -m bench.profile_stages --auth-web --note "$NOTE" --name "profile$SUFFIX" ;;
    ablation) "$PY" -m bench.ablation --note "$NOTE" --name "ablation_recognition$SUFFIX" ;;
    gil) "$PY" -m bench.gil --note "$NOTE" --name "gil$SUFFIX" ;;
    memory) "$PY" -m bench.memory_soak "${common[@]}" --base-url "$BASE_URL" --auth-web-port "${AUTH_WEB_LISTEN##*:}" \
      --duration "$MEMORY_DURATION" --concurrency "$MEMORY_CONCURRENCY" --interval "$MEMORY_INTERVAL" \
      --name "memory_soak$SUFFIX" ;;
    *) echo "unknown step $step (component old login profile ablation gil memory)" >&2; exit 2 ;;
  esac
done
# The summary judges the login and old-pipeline results; a run of other steps alone leaves it as it was.
case " $STEPS " in *" login "* | *" old "*) "$PY" -m bench.summary --suffix "$SUFFIX" ;; esac
echo "all benchmarks done in $(($(date +%s) - started)) s; results in bench/results/"
