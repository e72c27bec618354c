#!/bin/sh
# A Ray worker node for the class's runs (compose.yaml's `worker`): it joins the head and offers one GPU.
# usage: scripts/ray-worker.sh HEAD_ADDRESS        e.g. scripts/ray-worker.sh head:6379
#
# `docker compose up --scale worker=4` starts four replicas that all see every GPU of the machine (Compose cannot
# hand replicas different GPUs), so each claims the first GPU no other replica holds: a lock on a file of the shared
# data volume, held by `ray start` for as long as the worker runs, and gone with it. With no GPU it joins with its
# CPUs only. RAY_AUTH_MODE and RAY_AUTH_TOKEN come from the environment, as on the head.
set -eu
head=${1:?usage: ray-worker.sh HEAD_ADDRESS}
claims=${CLASSROOM_GPU_CLAIMS:-/app/data/.gpu-claims}
mkdir -p "$claims"
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -eq 0 ]; then
    echo "ray-worker: no GPU visible, joining $head with this container's CPUs" >&2
    exec ray start --address="$head" --block
fi
cpus=$(( $(nproc) / gpus ))  # the machine's CPUs shared out between its GPU workers
[ "$cpus" -ge 1 ] || cpus=1
i=0
while [ "$i" -lt "$gpus" ]; do
    exec 9>"$claims/gpu$i"
    if flock -n 9; then
        echo "ray-worker: GPU $i of $gpus and $cpus CPUs, joining $head" >&2
        export CUDA_VISIBLE_DEVICES="$i"
        exec ray start --address="$head" --num-gpus=1 --num-cpus="$cpus" --block
    fi
    i=$((i + 1))
done
echo "ray-worker: all $gpus GPUs of this machine have a worker already; scale the workers to $gpus" >&2
exit 1
