# syntax=docker/dockerfile:1
# hookgate image: `hookgate gateway ...`, `hookgate sensor ...` or `hookgate up ...`.
#   docker build -t ghcr.io/hookgate/hookgate:0.1.0 .

# --- build: one wheel for hookgate and one for each runtime dependency ------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the distribution is built from (pyproject names README.md as the long description).
COPY pyproject.toml README.md ./
COPY hookgate ./hookgate
COPY gateway ./gateway
COPY sensors ./sensors
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed offline, no compiler, no source tree ----------------------
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels hookgate
# uid/gid 10001: not root, and not a uid the host is likely to use. The data, spool and dry-run
# folders exist and belong to it, so named volumes mounted there start out writable.
RUN groupadd --system --gid 10001 hookgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hookgate --shell /usr/sbin/nologin hookgate \
 && mkdir -p /var/lib/hookgate/spool /var/lib/hookgate/hookgate-data /var/lib/hookgate/hookgate-out \
 && chown -R 10001:10001 /var/lib/hookgate
WORKDIR /var/lib/hookgate
USER 10001:10001
# 12000 and 13000: the example EventSources' webhook ports; 7777: a sensor's metrics/healthz/readyz.
EXPOSE 12000 13000 7777
# No HEALTHCHECK: the probe port depends on the command (a listener port for the gateway,
# --metrics-port for a sensor); docker-compose.yml and the Kubernetes probes name it.
ENTRYPOINT ["hookgate"]
CMD ["--help"]
