# One image for the Dagster user code, webserver and daemon, the prediction server and the bot.
#
#   docker build -t k8s-analysis:0.1.0 .
#   docker build --build-arg TENSORFLOW=gpu -t k8s-analysis:0.1.0-gpu .
#
# The build stage installs the package and its dependencies into a virtual environment, and the
# runtime stage copies only that environment, so no compiler, pip cache or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# cpu: the tensorflow-cpu wheel that pyproject.toml installs on Linux x86_64.
# gpu: TensorFlow's full build with its CUDA libraries, for the training step on GPU nodes.
ARG TENSORFLOW=cpu
# Object-storage client: s3 (AWS and S3-compatible servers) or gcs. Install one; see pyproject.toml.
ARG STORAGE_EXTRA=s3
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY k8s_analysis ./k8s_analysis
RUN case "$TENSORFLOW" in cpu|gpu) ;; *) echo "TENSORFLOW must be cpu or gpu, not '$TENSORFLOW'" >&2; exit 1;; esac \
    && pip install --upgrade pip \
    && pip install ".[${STORAGE_EXTRA}]"
# Both wheels install the same `tensorflow` package, so the CPU one is removed before the full one
# of the same version goes in. pip check would then report the removed tensorflow-cpu requirement.
RUN if [ "$TENSORFLOW" = gpu ]; then \
        version="$(pip show tensorflow-cpu | sed -n 's/^Version: //p')" \
        && pip uninstall --yes tensorflow-cpu \
        && pip install "tensorflow[and-cuda]==${version}"; \
    fi \
    && python -c "import k8s_analysis.definitions, dagster_k8s, dagster_postgres"

FROM ${PYTHON_IMAGE} AS runtime
ARG TENSORFLOW=cpu
LABEL org.opencontainers.image.title="k8s-analysis" \
      org.opencontainers.image.description="Learn from a GitHub project's issues and pull requests and label new ones" \
      org.opencontainers.image.licenses="Apache-2.0"
# The Helm chart runs every pod as this user (runAsUser 10001, fsGroup 10001).
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/app app \
    && mkdir -p /data /opt/dagster/dagster_home \
    && chown 10001:10001 /data /opt/dagster/dagster_home
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    K8S_ANALYSIS_DATA_DIR=/data \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    TF_CPP_MIN_LOG_LEVEL=2 \
    K8S_ANALYSIS_TENSORFLOW=${TENSORFLOW}
USER 10001:10001
WORKDIR /home/app
# Dagster webserver, user-code gRPC server, prediction server, bot.
EXPOSE 3000 3030 8080 8888
CMD ["k8s-analysis", "--help"]
