# syntax=docker/dockerfile:1
# The always-on worker. Build: docker build -t tracos-sync-watcher .
# Run it with docker compose (MongoDB replica set next to it): docs/operations.md, "Production".

# Both stages must use the same image: the virtual environment points at its interpreter.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: exactly the versions uv.lock pins (--frozen never re-resolves) -------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (their own layer, rebuilt only when the lock changes), then the project.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --extra tracing --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY watcher ./watcher
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra tracing --no-editable

# --- runtime: the interpreter, the virtual environment, nothing else -------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --gid 1000 watcher \
    && useradd --uid 1000 --gid watcher --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin watcher
COPY --from=build /app/.venv /app/.venv
# METRICS_HOST: inside its own network namespace the worker must listen on every
# interface for a published METRICS_PORT to reach it (loopback would be the container's).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METRICS_HOST=0.0.0.0
# The default folders (data/inbound, data/outbound, data/archive, data/failed, data/state)
# are relative to the working directory, so they all land on the volume.
WORKDIR /app
RUN mkdir data && chown watcher:watcher data
VOLUME ["/app/data"]
USER 1000:1000
# `watcher health` reads the heartbeat the worker rewrites in data/state every 2 s
# (unhealthy once it is 10 s old, the store is unreachable or the process is gone).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --start-interval=2s --retries=3 \
    CMD ["watcher", "health"]
# The worker is PID 1 and handles SIGTERM/SIGINT itself (finishes the batch, exits 0).
ENTRYPOINT ["watcher"]
CMD ["run"]
