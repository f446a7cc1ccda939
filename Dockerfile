# syntax=docker/dockerfile:1
# PersonaBridge: `docker build -t personabridge .` then
# `docker run -p 8080:8080 personabridge` (or `docker compose up`; infra/ deploys it to AWS).
#
# Two stages: the builder installs the project and its runtime dependencies (the list in
# pyproject.toml, nothing else: no dev tools, no tests) into /opt/venv; the runtime stage
# copies only that venv and the persona cards onto a fresh slim image. Both stages use
# the same base image, so the venv's interpreter path is valid in the second one.

FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, in their own layer: a code change does not reinstall them. The list
# is generated from pyproject.toml's [project].dependencies, so there is one list only.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print(*deps, sep=chr(10))" > /tmp/runtime-requirements.txt \
    && pip install -r /tmp/runtime-requirements.txt

# Then the project itself. `pip install .` resolves pyproject's dependencies again (all
# already satisfied by the layer above) and installs the packages with their data files.
COPY bot ./bot
COPY adapters ./adapters
COPY auth ./auth
RUN pip install . && pip check


FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="PersonaBridge" \
      org.opencontainers.image.description="Chat with a customised AI persona on Discord, Telegram and the web." \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric uid, so orchestrators can verify "not root" without reading /etc/passwd.
RUN groupadd --system --gid 10001 personabridge \
    && useradd --system --uid 10001 --gid personabridge --no-create-home \
        --home-dir /app --shell /usr/sbin/nologin personabridge \
    && mkdir -p /app /data \
    && chown personabridge:personabridge /data

COPY --from=builder /opt/venv /opt/venv
COPY personas /app/personas

# WEB__HOST: listen on every interface inside the container (the default, 127.0.0.1, is
# unreachable from outside it). /data is where the SQLite file lives; a named volume
# mounted there inherits the directory's owner, so the app can write to it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PERSONABRIDGE_WEB__HOST=0.0.0.0 \
    PERSONABRIDGE_WEB__PORT=8080 \
    PERSONABRIDGE_PERSONAS_DIR=/app/personas \
    PERSONABRIDGE_STORE__SQLITE_PATH=/data/personabridge.db

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# No curl in the slim image: the interpreter is already there. urlopen raises on a 503
# (store unreachable) and on a refused connection, so either marks the container unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PERSONABRIDGE_WEB__PORT', '8080') + '/healthz', timeout=4)"]

# `personabridge run` by default; other commands still work, e.g.
# `docker run --rm -it personabridge chat` or `... personabridge personas list`.
ENTRYPOINT ["personabridge"]
CMD ["run"]
