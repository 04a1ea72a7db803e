#!/usr/bin/env bash
# GPU check: on a machine with a CUDA GPU, install what is missing, build a small generated store,
# train both models with DDP over NCCL (TorchDistributor, one rank per GPU) and score with the
# models on the GPU; print samples/s (training) and rows/s (scoring) beside the same figures on
# the CPU, measured in the same run. Fails (non-zero) on any CUDA or NCCL error, on a GPU run
# that silently fell back to the CPU, and when no CUDA GPU is visible. Sized for <= 10 minutes.
#
#   scripts/gpu_check.sh [--python PY] [--work DIR] [--users N] [--epochs N] [--copies N]
#                        [--time-limit S] [--skip-install] [-h|--help]
#
# Exit codes: 0 passed; 1 a step failed or a CUDA/NCCL error was seen; 2 bad arguments;
# 3 no CUDA GPU (nvidia-smi missing or lists none, or torch cannot see one); 124 time limit.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK=""
USERS=1000
EPOCHS=2
COPIES=20
LIMIT=600
INSTALL=1
NVIDIA_SMI="${GPU_CHECK_NVIDIA_SMI:-nvidia-smi}"  # tests point this at a stand-in

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {  # die CODE MESSAGE
    echo "gpu_check: FAILED: $2" >&2
    exit "$1"
}

positive_int() {  # positive_int NAME VALUE
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || die 2 "$1 must be a positive integer, got '$2' (see --help)"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --python|--work|--users|--epochs|--copies|--time-limit)
            [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die 2 "$1 needs a value (see --help)"
            case "$1" in
                --python) PY="$2" ;;
                --work) WORK="$2" ;;
                --users) positive_int --users "$2"; USERS="$2" ;;
                --epochs) positive_int --epochs "$2"; EPOCHS="$2" ;;
                --copies) positive_int --copies "$2"; COPIES="$2" ;;
                --time-limit) positive_int --time-limit "$2"; LIMIT="$2" ;;
            esac
            shift 2 ;;
        --skip-install) INSTALL=0; shift ;;
        *) die 2 "unknown argument '$1' (see --help)" ;;
    esac
done

# 1. A CUDA GPU, seen by the driver.
command -v "$NVIDIA_SMI" >/dev/null 2>&1 || die 3 "no CUDA GPU: '$NVIDIA_SMI' not found (no NVIDIA driver on this machine); run this on a machine with an NVIDIA GPU"
GPUS="$("$NVIDIA_SMI" -L 2>/dev/null | grep -c '^GPU ' || true)"
[[ "$GPUS" -ge 1 ]] || die 3 "no CUDA GPU: '$NVIDIA_SMI -L' lists no GPU"
echo "gpu_check: $GPUS GPU(s): $("$NVIDIA_SMI" -L | head -n 4 | tr '\n' ';')"

DEADLINE=$((SECONDS + LIMIT))
left() { echo $((DEADLINE - SECONDS)); }
step() {  # step NAME LOGFILE CMD...: run with the remaining time, log, fail on error / CUDA errors
    local name="$1" log="$2"; shift 2
    local budget; budget="$(left)"
    [[ "$budget" -gt 0 ]] || die 124 "time limit of ${LIMIT}s reached before '$name'"
    echo "gpu_check: $name ..." >&2
    local started=$SECONDS
    timeout "$budget" "$@" >"$log" 2>&1
    local rc=$?
    if grep -qiE 'CUDA error|cudaError|CUDA out of memory|CUBLAS_STATUS|CUDNN_STATUS|NCCL error|ncclSystemError|ncclInternalError|device-side assert' "$log"; then
        grep -iE 'CUDA error|cudaError|out of memory|CUBLAS|CUDNN|NCCL|device-side' "$log" | head -n 5 >&2
        die 1 "'$name' hit a CUDA/NCCL error (log: $log)"
    fi
    [[ $rc -eq 124 ]] && die 124 "'$name' ran past the time limit of ${LIMIT}s (log: $log)"
    [[ $rc -eq 0 ]] || { tail -n 30 "$log" >&2; die 1 "'$name' exited $rc (log: $log)"; }
    echo "gpu_check: $name done in $((SECONDS - started)) s" >&2
}

# 2. Install what is missing: the project and its pins (torch from PyPI carries CUDA), and Java.
if [[ $INSTALL -eq 1 ]]; then
    if ! command -v java >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die 1 "Java 17 is missing and apt-get is not there to install it"
        echo "gpu_check: installing Java 17" >&2
        (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless) >/dev/null || die 1 "could not install Java 17"
    fi
    if ! "$PY" -c "import interest_lib, pyspark, torch, deltalake" >/dev/null 2>&1; then
        echo "gpu_check: installing the project into $("$PY" -c 'import sys; print(sys.prefix)')" >&2
        "$PY" -m pip install -q -e "$REPO" || die 1 "pip install -e $REPO failed"
    fi
fi
"$PY" -c "import interest_lib, pyspark, torch, deltalake" >/dev/null 2>&1 \
    || die 1 "$PY cannot import interest_lib, pyspark, torch and deltalake (run without --skip-install)"
TORCH_CUDA="$(cd "$REPO" && "$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.device_count())" 2>&1 | tail -n 1)"
read -r TORCH_VERSION TORCH_BUILT_CUDA TORCH_SEES COUNT <<<"$TORCH_CUDA"
[[ "$TORCH_SEES" == "True" ]] || die 3 "no CUDA GPU visible to torch $TORCH_VERSION (built for CUDA $TORCH_BUILT_CUDA): torch.cuda.is_available() is False although $NVIDIA_SMI lists $GPUS GPU(s); a CPU-only torch build or a driver too old for it"
RANKS="$COUNT"

# 3. A small store, featurized (embeddings on the GPU).
WORK="${WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}"
mkdir -p "$WORK/logs"
cat >"$WORK/gpus.sh" <<EOF
#!/usr/bin/env bash
echo '{"name": "gpu", "addresses": [$(seq -s, -f '"%g"' 0 $((RANKS - 1)))]}'
EOF
chmod +x "$WORK/gpus.sh"
# JSON is YAML: the driver owns the GPUs (TorchDistributor local mode, one rank per GPU).
cat >"$WORK/conf.yml" <<EOF
{"storage": {"warehouse": "$WORK/warehouse", "raw_dir": "$WORK/raw"},
 "spark": {"master": "local[*]", "extra": {"spark.driver.resource.gpu.amount": "$RANKS",
           "spark.driver.resource.gpu.discoveryScript": "$WORK/gpus.sh"}},
 "generate": {"users": $USERS},
 "tracking": {"enabled": false}}
EOF
# A command, not a shell function: `step` runs it under `timeout`.
CLI=(env "PYTHONPATH=$REPO" "$PY" -m interest_lib.cli)
CONF=(--conf-file "$WORK/conf.yml")
step generate "$WORK/logs/generate.log" "${CLI[@]}" generate "${CONF[@]}"
step ingest "$WORK/logs/ingest.log" "${CLI[@]}" ingest "${CONF[@]}"
step sessionize "$WORK/logs/sessionize.log" "${CLI[@]}" sessionize "${CONF[@]}"
step featurize "$WORK/logs/featurize.log" "${CLI[@]}" featurize --set embeddings.device=cuda "${CONF[@]}"

# 4. Train both models on the GPUs (NCCL) and on the CPU (gloo), same data, same epochs.
rate() {  # samples/s of the newest run of TASK in STORE, from its epochs.jsonl
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
from pathlib import Path
pointer = json.loads((Path(sys.argv[1]) / f"latest-{sys.argv[2]}.json").read_text())
lines = [json.loads(x) for x in (Path(sys.argv[1]) / pointer["run_id"] / "epochs.jsonl").read_text().splitlines()]
print(f"{sum(x['samples'] for x in lines) / max(sum(x['seconds'] for x in lines), 1e-9):.1f}")
EOF
}
declare -A RESULT
for task in migration evolution; do
    for dev in cuda cpu; do
        ranks=$([[ $dev == cuda ]] && echo "$RANKS" || echo 2)
        log="$WORK/logs/train-$task-$dev.log"
        step "train $task on $dev ($ranks ranks)" "$log" "${CLI[@]}" train --model "$task" \
            --set "train.use_gpu=$dev" --set "train.num_processes=$ranks" --set "train.store=$WORK/runs-$dev" \
            --set "train.epochs=$EPOCHS" --set train.patience=99 "${CONF[@]}"
        if [[ $dev == cuda ]] && ! grep -q "(GPU)" "$log"; then
            die 1 "train $task with train.use_gpu=cuda did not train on the GPU (log: $log)"
        fi
        RESULT["train-$task-$dev"]="$(rate "$WORK/runs-$dev" "$task")" || die 1 "no epochs recorded for $task on $dev"
    done
done

# 5. Score in Spark (mapInPandas, models on the GPU in each Python worker) and in-process.
for dev in cuda cpu; do
    log="$WORK/logs/score-$dev.log"
    step "score on $dev" "$log" env PYTHONPATH="$REPO" "$PY" "$REPO/bench/bench_scoring.py" \
        --warehouse "$WORK/warehouse" --store "$WORK/runs-cuda" --copies "$COPIES" \
        --set "score.device=$dev" --conf-file "$WORK/conf.yml"
    RESULT["udf-$dev"]="$(grep '^mapInPandas UDF' "$log" | awk '{gsub(",", "", $(NF-2)); print $(NF-2)}')"
    RESULT["local-$dev"]="$(grep '^in-process, one batch' "$log" | awk '{gsub(",", "", $(NF-2)); print $(NF-2)}')"
    [[ -n "${RESULT["udf-$dev"]}" && -n "${RESULT["local-$dev"]}" ]] || die 1 "score on $dev printed no rates (log: $log)"
done

# 6. The table: GPU beside CPU, one run.
echo
echo "GPU check: $GPUS GPU(s), torch $TORCH_VERSION (CUDA $TORCH_BUILT_CUDA), $USERS users, $EPOCHS epochs, $((SECONDS)) s"
printf '%-40s %14s %14s %8s\n' "measure" "cuda" "cpu" "ratio"
row() { printf '%-40s %14s %14s %8s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }')"; }
row "train migration (samples/s)" "${RESULT[train-migration-cuda]}" "${RESULT[train-migration-cpu]}"
row "train evolution (samples/s)" "${RESULT[train-evolution-cuda]}" "${RESULT[train-evolution-cpu]}"
row "score, mapInPandas UDF (rows/s)" "${RESULT[udf-cuda]}" "${RESULT[udf-cpu]}"
row "score, in-process one batch (rows/s)" "${RESULT[local-cuda]}" "${RESULT[local-cpu]}"
echo "gpu_check: PASSED (logs under $WORK/logs)"
