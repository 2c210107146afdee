# syntax=docker/dockerfile:1
# bearbot: the bot, the trainer worker and the CLI in one image.
#
#   docker build -t bearbot .                          # CPU-only torch: no CUDA libraries in the image
#   docker build -t bearbot:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
#   docker run --rm bearbot --help
#
# compose.yaml runs it with PostgreSQL; deploy/ has systemd units for a plain server.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# Where pip finds torch and torchvision. PyPI's Linux wheels bundle CUDA (several GB the bot does
# not need on CPU); PyTorch's CPU index has the same versions without it. A GPU worker image
# names a CUDA index instead (see the build line above).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BEARBOT_DATA_DIR=/data

RUN groupadd --gid 10001 bearbot \
    && useradd --create-home --uid 10001 --gid 10001 bearbot \
    && mkdir /data \
    && chown 10001:10001 /data

WORKDIR /app

# torch first, from TORCH_INDEX, in its own layer: it is most of the image and changes least.
# The range matches pyproject.toml's.
RUN pip install --index-url "${TORCH_INDEX}" "torch>=2.9,<2.15" "torchvision>=0.24,<0.30"

COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY bearbot ./bearbot
COPY bot ./bot
COPY storage ./storage
COPY trainer ./trainer
# Editable, so storage/db.py finds the migrations in /app/alembic beside the code.
# torch is already satisfied above, so nothing here pulls the CUDA build back in.
RUN pip install -e ".[postgres]"

USER 10001:10001
VOLUME ["/data"]
# Webhook mode listens here (BEARBOT_WEBHOOK_PORT); polling mode opens no port.
EXPOSE 8443
ENTRYPOINT ["bearbot"]
CMD ["run"]
