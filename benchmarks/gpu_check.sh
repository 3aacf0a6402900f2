#!/usr/bin/env bash
# The CUDA paths, checked on one GPU in a few minutes (target: under 8 on one modern GPU).
#
#   bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --device cpu    # dry run of the same checks on the CPU
#
# Prints one JSON line per check: {"check", "ok", "seconds", "detail" | "error"}. Every check
# is independent: a failure is printed as JSON with the tail of its output and the script
# goes on (it never aborts the rest); the exit status is the number of failed checks.
# Checks: the device and bf16 support; every model for a few steps with train.amp=true
# (bf16 autocast) and channels_last for the conv nets; train.compile=true for DCGAN;
# the NCCL collectives under `torchrun --nproc_per_node 1` and a torchrun training run
# that is resumed; `gankit eval` on the GPU; `gankit bench` for every model.
# Environment: GPU_CHECK_TIMEOUT (seconds per check, default 240), GPU_CHECK_WORK (scratch
# folder, default a new temporary one), GPU_CHECK_ONLY (a regex: run only the checks whose
# names match), PYTHON (default python).
set -u

DEVICE=cuda
if [ "${1:-}" = "--device" ]; then DEVICE="${2:?--device needs cuda or cpu}"; fi
PY="${PYTHON:-python}"
LIMIT="${GPU_CHECK_TIMEOUT:-240}"
WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/gankit-gpu-check.XXXXXX)}"
mkdir -p "$WORK"
FAILED=0
export PYTHONUNBUFFERED=1 MPLCONFIGDIR="$WORK/mpl"

# check NAME CMD...: run CMD with a time limit; one JSON line either way.
check() {
    local name="$1"; shift
    local log="$WORK/$name.log" start end rc
    if [ -n "${GPU_CHECK_ONLY:-}" ] && ! [[ "$name" =~ $GPU_CHECK_ONLY ]]; then return 0; fi
    start=$(date +%s.%N)
    timeout "$LIMIT" "$@" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    [ "$rc" -ne 0 ] && FAILED=$((FAILED + 1))
    "$PY" - "$name" "$rc" "$start" "$end" "$log" "$LIMIT" <<'EOF'
import json, sys
name, rc, start, end, log, limit = sys.argv[1:]
lines = [l for l in open(log, errors="replace").read().splitlines() if l.strip()]
row = {"check": name, "ok": rc == "0", "seconds": round(float(end) - float(start), 1)}
if rc == "0":
    row["detail"] = lines[-1][-300:] if lines else ""
    for i in reversed([i for i, l in enumerate(lines) if l.startswith("{")]):  # a JSON result (eval, bench)
        try:
            row["detail"] = json.loads("\n".join(lines[i:]))
            break
        except ValueError:
            continue
else:
    row["rc"] = int(rc)
    row["error"] = ("timed out after %ss; " % limit if rc in ("124", "137") else "") + " | ".join(lines[-6:])[-1500:]
print(json.dumps(row), flush=True)
EOF
}

GK=("$PY" -m gankit)  # an array, not a function: `timeout` runs programs only
TRAIN_FLAGS=(--device "$DEVICE" --no-progress)
QUIET=(train.log_every=5 train.sample_every=100000 train.checkpoint_every=10 train.samples=16)
# SeqGAN: a short schedule (the shipped one pre-trains for 60 epochs)
SEQGAN=(pretrain.g_epochs=1 pretrain.d_rounds=1 pretrain.d_samples=1000 model.d_samples=256
        model.eval_samples=1000 data.num_samples=2000 train.eval_every=0)

check env "$PY" -c "
import json, torch
cuda = torch.cuda.is_available()
print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'available': cuda,
                  'device': torch.cuda.get_device_name(0) if cuda else 'cpu',
                  'bf16': bool(cuda and torch.cuda.is_bf16_supported()), 'nccl': torch.distributed.is_nccl_available()}))
assert '$DEVICE' != 'cuda' or cuda, 'no CUDA device'
"

# every model, bf16 autocast; channels_last where the nets are convolutional
for model in gan cgan dcgan cyclegan seqgan; do
    extra=()
    case $model in
        dcgan|cyclegan) extra=(train.channels_last=true) ;;
        seqgan) extra=("${SEQGAN[@]}") ;;
    esac
    check "train-$model-amp" "${GK[@]}" train "$model" --out "$WORK/$model" --steps 20 "${TRAIN_FLAGS[@]}" \
        --set "${QUIET[@]}" train.amp=true "${extra[@]}"
done

check train-dcgan-compile "${GK[@]}" train dcgan --out "$WORK/dcgan-compile" --steps 30 "${TRAIN_FLAGS[@]}" \
    --set "${QUIET[@]}" train.compile=true train.amp=true

# NCCL: every collective gankit issues, with tensors on the GPU (gloo on the CPU dry run)
cat >"$WORK/collectives.py" <<EOF
import torch, torch.distributed as tdist
from torch import nn
from gankit.distributed import Dist
d = Dist.from_env("$DEVICE")
net = nn.Linear(4, 3).to(d.device)
net(torch.randn(2, 4, device=d.device)).sum().backward()
d.all_reduce_grads(list(net.parameters()))
d.broadcast_module(net)
assert d.any(True) and not d.should_stop(True, 3) and d.should_stop(True, 10)
rng = d.gather_objects({"torch": torch.get_rng_state(), "step": 1})
d.barrier()
print("backend", tdist.get_backend(), "device", d.device, "gathered", len(rng))
d.close()
EOF
check torchrun-collectives "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 "$WORK/collectives.py"

check torchrun-train "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m gankit \
    train dcgan --out "$WORK/ddp" --steps 20 "${TRAIN_FLAGS[@]}" \
    --set "${QUIET[@]}" train.amp=true train.sync_batchnorm=true
check torchrun-resume "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m gankit \
    train --resume "$WORK/ddp" --steps 40
check resume-verified "$PY" -c "
from gankit.runs import load_checkpoint
s = load_checkpoint('$WORK/ddp/checkpoints/last.pt')
assert s['step'] == 40 and s['world_size'] == 1, (s['step'], s['world_size'])
print('step', s['step'], 'digest', s['digest'][:19])
"

check eval-gan "${GK[@]}" eval "$WORK/gan" --device "$DEVICE" --n 2000
check eval-cyclegan "${GK[@]}" eval "$WORK/cyclegan" --device "$DEVICE"

for model in gan cgan dcgan cyclegan seqgan; do
    case $model in
        seqgan) check "bench-$model" "${GK[@]}" bench "$model" --device "$DEVICE" --steps 5 --warmup 2 --set "${SEQGAN[@]}" ;;
        *) check "bench-$model" "${GK[@]}" bench "$model" --device "$DEVICE" --steps 10 --warmup 3 --set train.amp=true ;;
    esac
done

"$PY" -c "import json; print(json.dumps({'check': 'summary', 'failed': $FAILED, 'work': '$WORK', 'device': '$DEVICE'}))"
exit "$FAILED"
