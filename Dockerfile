# syntax=docker/dockerfile:1
# ПОС ОГ — one image for every process of the production mode (docs/deployment.md):
#   posog db upgrade · posog serve module|lko|lkp|analytics|emulators · posog worker <name>
# Build: docker build -t posog:local .      Run the stack: docker compose up -d (compose.yaml)

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: exactly the locked runtime dependencies (uv.lock, no dev group) in /app/.venv -----------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
RUN python -m pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
WORKDIR /app
# Dependencies in a layer of their own: rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then the project. It stays an editable install of /app/src on purpose: `posog db upgrade` finds
# alembic.ini and migrations/ beside src/ (posog.core.migrate.ROOT), which a wheel would not carry.
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
 && python -m compileall -q --invalidation-mode unchecked-hash src migrations

# --- runtime: the interpreter, the virtual environment and the code; no uv, no dev tools -------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 posog \
 && useradd --system --uid 10001 --gid posog --home-dir /app --no-create-home --shell /usr/sbin/nologin posog
WORKDIR /app
COPY --from=build /app /app
COPY deploy/healthcheck.py /app/deploy/healthcheck.py
# The code is root's and read-only to the service; only var/ (scratch: bootstrap creates it) is its own.
RUN mkdir -p /app/var && chown posog:posog /app/var
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    POSOG_ENV=production \
    POSOG_LOG_JSON=true \
    POSOG_HOST=0.0.0.0 \
    POSOG_PORT=8000
USER 10001:10001
EXPOSE 8000
# `posog serve …` is probed on its liveness path; a worker is healthy while it runs (deploy/healthcheck.py).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["posog"]
CMD ["--help"]
