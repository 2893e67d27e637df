# syntax=docker/dockerfile:1
#
# One image for every broker process: `broker migrate | api | worker`.
#
#   docker build -t langgraph-broker .                       # target `api` (the default)
#   docker build --target worker -t langgraph-broker-worker .
#   docker run --rm -e DATABASE_URI=... langgraph-broker-worker migrate
#
# The two targets differ only in CMD and in the HEALTHCHECK, which only the api has
# (GET /ok); a worker serves no HTTP. docker-compose.yml builds both.
# The example graphs are baked in at /graphs (BROKER_CONFIG=/graphs/langgraph.json);
# mount your own directory over /graphs, see docs/production.md.

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtualenv holding the dependencies and the project -------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

# The dependencies first, read from pyproject.toml alone: a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself, editable from /app: `broker migrate` finds alembic.ini and
# alembic/ next to the `broker` package (broker/migrate.py `_ROOT`), so they stay here.
COPY README.md alembic.ini ./
COPY alembic/ alembic/
COPY broker/ broker/
COPY api/ api/
COPY worker/ worker/
RUN pip install --no-deps -e . \
    && python -m compileall -q broker api worker alembic

# -- base: the runtime, shared by both targets --------------------------------------------
FROM ${PYTHON_IMAGE} AS base

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BROKER_CONFIG=/graphs/langgraph.json

RUN groupadd --system --gid 10001 broker \
    && useradd --system --uid 10001 --gid broker --create-home --home-dir /home/broker \
        --shell /usr/sbin/nologin broker

# Same paths as in `build`: the editable install points at /app.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# The default graphs (read-only for the broker user, like the code).
COPY examples/ /graphs/

USER 10001:10001
WORKDIR /home/broker
ENTRYPOINT ["broker"]

# -- worker: `broker worker` (also runs `broker migrate`) ---------------------------------
FROM base AS worker
# SIGTERM drains: runs get BROKER_SHUTDOWN_GRACE seconds, the rest are handed back.
STOPSIGNAL SIGTERM
CMD ["worker"]

# -- api: `broker api` on 0.0.0.0:8123 (the default target, so it comes last) -------------
FROM base AS api
EXPOSE 8123
# The health check asks the port CMD serves on; change both together.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8123/ok', timeout=2)"]
CMD ["api", "--host", "0.0.0.0", "--port", "8123"]
