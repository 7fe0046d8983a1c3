#!/usr/bin/env bash
# Instructions per request through Tollgate, counted by valgrind's callgrind: a figure that does
# not move with machine load, for catching regressions (wall-clock benchmarks on 2 shared cores
# cannot see a 5% change; this can).
#
#   bench/callgrind.sh [N] [--no-build] [--annotate] [--api anthropic]
#
# Runs the release `tollgate` under `valgrind --tool=callgrind` twice against the mock provider
# (which runs natively): once serving N (default 2000) sequential chat completions on one
# connection (`oha -n N -c 1`, or Python when oha is not installed), once serving none.
# Prints (Ir of the loaded run - Ir of the idle run) / N.
# Both runs do the same start-up, readiness check and shutdown, so those cancel out.
# --annotate also prints the functions that cost the most in the loaded run. --api anthropic
# sends Anthropic Messages requests to an Anthropic target instead (forwarded as the client wrote
# them), to set that route beside the OpenAI one.
set -euo pipefail

N=2000
BUILD=1
ANNOTATE=0
API=openai
NEXT_IS_API=0
for arg in "$@"; do
    if (( NEXT_IS_API )); then
        API=$arg
        NEXT_IS_API=0
        continue
    fi
    case "$arg" in
        --no-build) BUILD=0 ;;
        --annotate) ANNOTATE=1 ;;
        --api) NEXT_IS_API=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *[!0-9]*|'') echo "usage: $0 [N] [--no-build] [--annotate] [--api openai|anthropic]" >&2; exit 2 ;;
        *) N=$arg ;;
    esac
done
case "$API" in
    openai)
        BODY='{"model":"bench","messages":[{"role":"user","content":"Hello"}]}'
        ROUTE=/v1/chat/completions
        KIND=openai BASE_PATH=/v1
        MODEL=gpt-4o-mini ;;
    anthropic)
        BODY='{"model":"bench","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'
        ROUTE=/v1/messages
        KIND=anthropic BASE_PATH=
        MODEL=claude-sonnet-4-20250514 ;;
    *) echo "--api must be openai or anthropic" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RELEASE=$TARGET_DIR/release

# The client only has to send the same requests in every run: callgrind counts the gateway's
# instructions, not the client's. oha when installed; otherwise a Python client on one
# keep-alive connection, sending the same headers.
OHA=$(command -v oha || true)
[[ -z "$OHA" && -x "$HOME/.cargo/bin/oha" ]] && OHA=$HOME/.cargo/bin/oha
if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: install it (apt-get install valgrind)" >&2
    exit 2
fi
if (( BUILD )); then
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p tollgate -p tollgate-mock-provider)
fi
for bin in tollgate tollgate-mock-provider; do
    [[ -x "$RELEASE/$bin" ]] || { echo "$RELEASE/$bin missing: build it or drop --no-build" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/tollgate-callgrind.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits for a TCP listener, connecting without sending anything: the same, fixed work for the
# gateway in every run, unlike a polling loop of HTTP requests.
wait_port() {
    local port=$1 pid=$2 deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before listening on $port" >&2; return 1; }
        (( SECONDS < deadline )) || { echo "nothing listening on $port after $3 s" >&2; return 1; }
        sleep 0.2
    done
}

MOCK_PORT=$(free_port)
"$RELEASE/tollgate-mock-provider" --listen "127.0.0.1:$MOCK_PORT" --workers 1 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT" "$!" 30

# A virtual key made beforehand (natively, outside valgrind), so that both runs start from the
# same database and every measured request is authenticated like in production. The key has a
# budget far above the load, so every request also reserves and settles its worst-case cost;
# every request is metered through the journal into the ledger.
export TOLLGATE_DATA_DIR=$WORK/data
ORG=$("$RELEASE/tollgate" orgs create --name bench | awk '/^organization/ {print $2}')
KEY=$("$RELEASE/tollgate" keys create --org "$ORG" --name bench --budget 1000000 2>/dev/null)

# run_gateway REQUESTS OUTFILE: one callgrind run of the gateway serving REQUESTS requests.
run_gateway() {
    local requests=$1 out=$2 port config pid
    port=$(free_port)
    config=$WORK/tollgate-$requests.yaml
    cat >"$config" <<EOF
server: { listen: "127.0.0.1:$port", workers: 1 }
providers:
  mock: { kind: $KIND, api_base: "http://127.0.0.1:$MOCK_PORT$BASE_PATH", api_key: bench }
models:
  - name: bench
    targets: [ { provider: mock, model: $MODEL } ]
limits: { default: { rpm: 1000000000, tpm: 1000000000000 } }
EOF
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$RELEASE/tollgate" serve --config "$config" >"$WORK/tollgate-$requests.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" 600
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")
    [[ "$status" == 200 ]] || { echo "/health/ready answered $status" >&2; return 1; }
    if (( requests > 0 )) && [[ -z "$OHA" ]]; then
        python3 - "127.0.0.1" "$port" "$ROUTE" "$BODY" "$KEY" "$requests" <<'PY'
import http.client, sys
host, port, route, body, key, n = sys.argv[1:7]
conn = http.client.HTTPConnection(host, int(port))
headers = {"content-type": "application/json", "authorization": f"Bearer {key}",
           "user-agent": "oha/1.14.0", "accept": "*/*"}
for i in range(int(n)):
    conn.request("POST", route, body=body.encode(), headers=headers)
    response = conn.getresponse()
    answer = response.read()
    if response.status != 200:
        sys.exit(f"request {i}: status {response.status}: {answer[:300]!r}")
PY
    elif (( requests > 0 )); then
        "$OHA" --no-tui --output-format json -n "$requests" -c 1 -m POST -T application/json -d "$BODY" \
            -H "Authorization: Bearer $KEY" \
            "http://127.0.0.1:$port$ROUTE" >"$WORK/oha.json"
        python3 - "$WORK/oha.json" "$requests" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
codes = report.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
if ok != int(sys.argv[2]):
    sys.exit(f"expected {sys.argv[2]} answers 200, got {codes} errors {report.get('errorDistribution')}")
PY
    fi
    kill -TERM "$pid"
    wait "$pid" || true   # callgrind writes its file as the process exits
    [[ -s "$out" ]] || { echo "callgrind wrote no $out (see $WORK/tollgate-$requests.log)" >&2; return 1; }
}

# The instruction count (Ir) of a callgrind output file.
total_ir() {
    local line
    line=$(grep -E '^(summary|totals):' "$1" | head -n1)
    [[ -n "$line" ]] || { echo "no summary in $1" >&2; return 1; }
    echo "${line#*: }" | awk '{print $1}'
}

echo "callgrind: idle run (0 requests)..." >&2
run_gateway 0 "$WORK/callgrind.idle.out"
echo "callgrind: loaded run ($N sequential requests)..." >&2
run_gateway "$N" "$WORK/callgrind.loaded.out"

IDLE=$(total_ir "$WORK/callgrind.idle.out")
LOADED=$(total_ir "$WORK/callgrind.loaded.out")
PER=$(( (LOADED - IDLE) / N ))

printf 'idle run:    %15d Ir\n' "$IDLE"
printf 'loaded run:  %15d Ir (%d requests)\n' "$LOADED" "$N"
printf 'per request: %15d Ir\n' "$PER"
echo "callgrind files in $WORK (open with callgrind_annotate or kcachegrind)"

if (( ANNOTATE )) && command -v callgrind_annotate >/dev/null; then
    echo
    callgrind_annotate --inclusive=no "$WORK/callgrind.loaded.out" 2>/dev/null | head -n 45
fi
