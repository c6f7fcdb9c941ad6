# PruneScope image: the same image runs the server (`prunescope serve`, the default CMD) and the
# Celery job workers (`prunescope worker ...`, see docker-compose.yml and docs/scaling.md).
# torch and torchvision are installed first, pinned together (torchvision must match torch
# exactly), so their wheels are chosen explicitly: the default PyPI wheels on Linux x86_64 are
# CUDA-enabled, which the GPU workers need (the image is ~6 GB). Override TORCH_SPEC to pin another
# matching pair. timm, onnx and onnx2torch come with PruneScope itself (`pip install .`); timm
# never downloads weights (HF_HUB_OFFLINE is set by PruneScope's registry).
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
# the heavy layer first: it stays cached while the application code changes
RUN pip install ${TORCH_SPEC}

COPY pyproject.toml README.md ./
COPY backend backend
COPY frontend frontend
COPY models models
RUN pip install .

# Non-root user. The folders that compose mounts named volumes on are created here, owned by
# that user, so a fresh named volume starts out writable for it (Docker copies the ownership
# of the image folder into an empty named volume). /locks holds the GPU claim files of the
# workers on one host (docker-compose.yml, service `worker`); flock comes from util-linux.
RUN command -v flock >/dev/null \
    && useradd --create-home --uid 1000 prunescope \
    && mkdir -p /data /artifacts /locks \
    && chown prunescope:prunescope /data /artifacts /locks
USER prunescope

ENV PRUNESCOPE_DATA_DIR=/data
EXPOSE 8050
CMD ["prunescope", "serve", "--host", "0.0.0.0"]
