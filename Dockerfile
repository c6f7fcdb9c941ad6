# PruneScope server image. torch is installed first so its wheel (CUDA-enabled on Linux) is
# chosen explicitly; override TORCH_SPEC to pin another build.
FROM python:3.11-slim
ARG TORCH_SPEC=torch==2.13.0
WORKDIR /app
RUN pip install --no-cache-dir "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY backend backend
COPY frontend frontend
COPY models models
RUN pip install --no-cache-dir .
ENV PRUNESCOPE_DATA_DIR=/data
EXPOSE 8050
CMD ["prunescope", "serve", "--host", "0.0.0.0"]
