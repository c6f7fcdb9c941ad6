# PruneScope image: the same image runs the server (`prunescope serve`, the default CMD) and the
# Celery job workers (`prunescope worker ...`, see docker-compose.yml and docs/scaling.md).
# torch is installed first so its wheel is chosen explicitly: the default PyPI wheel on Linux
# x86_64 is CUDA-enabled, which the GPU workers need. Override TORCH_SPEC to pin another build,
# e.g. --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# for a smaller CPU-only image.
FROM python:3.11-slim

ARG TORCH_SPEC=torch==2.13.0
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
