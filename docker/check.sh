#!/usr/bin/env bash
# Build docker/Dockerfile on a machine that cannot reach Docker Hub, and use the image for real:
# a 2-iteration point-robot run into a mounted output folder, sim_policy.py --video on a
# 1-iteration half-cheetah run (the mp4 decoded), and the test suite. Prints the image size and
# each step's time. Not part of CI (it downloads about 1 GB and takes 7 to 11 minutes on 2
# cores, a minute more when it makes the base); docs/docker.md says what it showed.
#
# Needs root, Debian's docker.io and debootstrap, and the package registries (PyPI, Debian).
#   sudo bash docker/check.sh
# The base image is made here from Debian's own packages (debootstrap, then docker import),
# Debian 12 with CPython 3.11 as in the default base; torch's CPU wheel comes from this
# machine's disk (WHEELS) where a public build would fetch the CUDA one from PyPI. dockerd is
# started if none answers, with --bridge=none: every container here uses the host's network.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-pearl-base:bookworm}
IMAGE=${IMAGE:-pearl:check}
WHEELS=${WHEELS:-/opt/wheels}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PORT=${PORT:-8765}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
WORK=$(mktemp -d /tmp/pearl-docker-check.XXXXXX)
# every container here uses the host's network (dockerd runs with --bridge=none)
in_container=(docker run --rm --network host)

step_start=0
step() {
    step_start=$SECONDS
    echo
    echo "== $*"
}
took() { echo "-- took $((SECONDS - step_start)) s"; }
fail() {
    echo "docker/check.sh: $*" >&2
    exit 2
}

[ "$(id -u)" -eq 0 ] || fail "run as root (it starts dockerd and runs debootstrap)"
command -v dockerd >/dev/null || fail "no dockerd: apt-get install docker.io"
command -v debootstrap >/dev/null || fail "no debootstrap: apt-get install debootstrap"
ls "$WHEELS"/torch-*.whl >/dev/null 2>&1 || fail "no torch wheel in WHEELS=$WHEELS"

step "dockerd"
if ! docker info >/dev/null 2>&1; then
    dockerd --bridge=none --iptables=false --ip6tables=false >"$WORK/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || fail "dockerd did not start: $WORK/dockerd.log"
fi
docker version --format 'engine {{.Server.Version}}'
took

step "base image $BASE (debootstrap bookworm + docker import)"
if docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "already here"
else
    rootfs="$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        fail "debootstrap failed: $WORK/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # this machine's trust store (its route to PyPI may present a local CA), and pip told so:
    # pip trusts only its own certificates otherwise
    cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' \
        --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" - "$BASE" >/dev/null
    rm -rf "$rootfs"
fi
"${in_container[@]}" "$BASE" python3 --version
took

step "build $IMAGE (torch from $WHEELS)"
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$WHEELS" >"$WORK/wheels.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
docker build --network host -f docker/Dockerfile -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE" \
    --build-arg TORCH_FIND_LINKS="http://127.0.0.1:$PORT/" . >"$WORK/build.log" 2>&1 ||
    {
        tail -30 "$WORK/build.log"
        fail "docker build failed: $WORK/build.log"
    }
kill $server
"${in_container[@]}" "$IMAGE" python -c \
    'import torch, mujoco, ray; print("torch", torch.__version__, "mujoco", mujoco.__version__, "ray", ray.__version__)'
echo "image size: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')"
took

# The image's user (uid 1000) writes into the mounted folder, as a host user 1000 would own it.
out="$WORK/output"
mkdir -p "$out"
chown 1000:1000 "$out"
run() { "${in_container[@]}" -v "$out:/pearl/output" "$IMAGE" "$@"; }
sets() { for expression in "$@"; do printf -- '--set\n%s\n' "$expression"; done; }

step "point robot, 2 iterations, into the mounted output/"
mapfile -t point < <(sets algo_params.num_iterations=2 util_params.use_gpu=false)
run python launch_experiment.py configs/point-robot-quick.json "${point[@]}" >"$WORK/point.log" 2>&1 ||
    fail "the point-robot run failed: $WORK/point.log"
progress=$(ls "$out"/point-robot/*/progress.csv)
echo "$progress on the host:"
python3 - "$progress" <<'EOF'
import csv, sys
columns = ["Epoch", "Number of env steps total", "AverageReturn_all_test_tasks", "QF Loss"]
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
print("  " + " | ".join(columns))
for row in rows:
    print("  " + " | ".join(row.get(c, "?")[:10] for c in columns))
EOF
took

step "half-cheetah velocity, 1 small iteration, then sim_policy.py --video"
small=(net_size=32 n_train_tasks=4 n_eval_tasks=2 env_params.n_tasks=6
    algo_params.num_iterations=1 algo_params.num_train_steps_per_itr=20
    algo_params.num_initial_steps=200 algo_params.num_steps_prior=200
    algo_params.num_extra_rl_steps_posterior=0 algo_params.num_tasks_sample=2
    algo_params.num_steps_per_eval=400 algo_params.max_path_length=200
    algo_params.meta_batch=2 algo_params.batch_size=64 util_params.use_gpu=false)
mapfile -t small < <(sets "${small[@]}")
run python launch_experiment.py configs/cheetah-vel.json "${small[@]}" \
    >"$WORK/cheetah.log" 2>&1 || fail "the cheetah run failed: $WORK/cheetah.log"
cheetah=/pearl/output/cheetah-vel/$(basename "$(ls -d "$out"/cheetah-vel/*/)")  # as the container sees it
run python sim_policy.py "$cheetah" --num_trajs 1 --video \
    >"$WORK/video.log" 2>&1 || fail "sim_policy.py --video failed: $WORK/video.log"
tail -2 "$WORK/video.log"
run python -c '
import sys, imageio.v3 as iio
frames = iio.imread(sys.argv[1], plugin="FFMPEG")
print(f"{sys.argv[1]}: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}, "
      f"mean pixel {frames.mean():.1f} (0: black)")
' "$cheetah/sim_video.mp4"
took

step "the test suite in the container (pytest -n 2)"
"${in_container[@]}" --shm-size=2g "$IMAGE" \
    python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -p no:cacheprovider \
    >"$WORK/tests.log" 2>&1 || {
    tail -30 "$WORK/tests.log"
    fail "tests failed in the container: $WORK/tests.log"
}
tail -1 "$WORK/tests.log"
took

echo
echo "docker/check.sh: all steps passed in $SECONDS s; logs in $WORK"
