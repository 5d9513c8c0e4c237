#!/usr/bin/env bash
# The GPU ("H100") criteria of the core, LEG-TV, GANchors, MimicGAN and DISC, in one go.
#
#   benchmarks/gpu_criteria.sh [OUTDIR]                # on a CUDA machine (DEVICE=cuda)
#   DEVICE=cpu QUICK=1 benchmarks/gpu_criteria.sh out  # a smoke run of the same commands
#
# Each benchmark's table goes to OUTDIR/<name>.md (its stderr to <name>.err) and one line per
# benchmark to OUTDIR/status.txt; a failing benchmark does not stop the others. Which printed
# figure answers which criterion is in docs/benchmarks.md, "Measuring the GPU criteria".
#
# Environment: DEVICE (cuda), QUICK (0; 1 = tiny sizes, to check the commands), PYTHON
# (python3), CAPTUM_LATENT_CACHE (the zoo's model cache: carry a filled one to skip training).
# GANchors and the LEG-TV attribution timing need captum and alibi; the other three need
# torch and this package only (see docs/benchmarks.md for a machine without them).
set -u
out=${1:-gpu-criteria}
device=${DEVICE:-cuda}
quick=${QUICK:-0}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
: > "$out/status.txt"
export PYTHONUNBUFFERED=1

run() {
    local name=$1
    shift
    echo "== $name: $py $*"
    local start=$SECONDS
    "$py" "$@" > "$out/$name.md" 2> "$out/$name.err"
    local rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$out/status.txt"
}

"$py" - <<'EOF' > "$out/machine.txt" 2>&1
import platform, torch
cuda = torch.cuda.is_available()
print(f"torch {torch.__version__}, python {platform.python_version()}, "
      f"device {torch.cuda.get_device_name(0) if cuda else platform.processor() or 'cpu'}")
for name in ("numpy", "captum", "alibi"):
    try:
        print(name, __import__(name).__version__)
    except Exception as error:  # noqa: BLE001 - report, do not stop
        print(name, "missing:", error)
EOF
cat "$out/machine.txt"

if [ "$quick" = 1 ]; then
    run core "$here/latent_search.py" --device "$device" --generators digits --batches 64 \
        --precisions fp32 --seconds 0.2 --repeats 1
    run leg_tv_solve "$here/leg_tv.py" --part solve --sizes 28 --instances 1 --random 1 \
        --digits 1 --repeats 1 --cvxpy-max 0 --device "$device"
    run anchors "$here/anchors.py" --digits 1 --samplers stitching gan --fresh 20 \
        --device "$device"
    run mimicgan "$here/mimicgan.py" --n 30 --corruptions binary --skip-baselines \
        --device "$device"
    run disc "$here/disc.py" --datasets digits --n 1 --methods "LSO + INR + DEP" \
        --cd-repeats 1 --timing --device "$device"
else
    # Issue 3: batch >= 4096 at >= half the raw forward+backward+Adam throughput.
    run core "$here/latent_search.py" --device "$device" --generators fmnist dcgan64 \
        --batches 1024 4096 8192 --precisions fp32 bf16 bf16-cl --batch-one
    # Issue 4: one 224x224 channel <= 1 s (and the 14-112 grids beside it).
    run leg_tv_solve "$here/leg_tv.py" --part solve --sizes 28 56 112 224 --cvxpy-max 0 \
        --device "$device"
    run leg_tv_e2e "$here/leg_tv.py" --part e2e --device "$device"
    # Issue 5: a GAN explanation no slower than random stitching on the same digit.
    run anchors "$here/anchors.py" --digits 20 --samplers stitching gan encoder \
        --device "$device"
    # Issue 6: cleaning 500 digits <= 10 s.
    run mimicgan "$here/mimicgan.py" --n 500 --device "$device"
    # Issue 7: one 28x28 counterfactual <= 5 s.
    run disc "$here/disc.py" --datasets digits --n 32 --methods "LSO + INR + DEP" \
        --cd-repeats 1 --timing --device "$device"
fi
echo "results in $out/"
