# Vigil's one image: the prediction service, the drift monitor, training and the webhook
# receiver all run from it (docker-compose.yml picks the command). It holds the installed
# wheel and its locked dependencies, not the repository's tree.

# The wheel: Vigil's four packages and their data (templates, rules, migrations).
FROM python:3.11-slim AS wheel
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY vigil vigil
COPY service service
COPY training training
COPY monitoring monitoring
RUN uv build --wheel --out-dir /dist

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    BENTOML_DO_NOT_TRACK=true \
    VIGIL_HOME=/data

# Same uv as the Makefile, so the image installs exactly what uv.lock pins.
RUN pip install --no-cache-dir "uv==0.13.9"

WORKDIR /app
# Dependencies first, exactly as uv.lock pins them: this layer is reused until it changes.
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-hashes --no-emit-project -o /tmp/requirements.txt \
    && uv venv /opt/venv \
    && uv pip install --python /opt/venv --no-cache -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY --from=wheel /dist/ /tmp/dist/
RUN uv pip install --python /opt/venv --no-cache --no-deps /tmp/dist/*.whl && rm -r /tmp/dist

# Not root. /data is where compose mounts the state volume (model store, SQLite log,
# reports); a new named volume copies this directory's owner.
RUN useradd --create-home --uid 10001 vigil \
    && mkdir -p /data \
    && chown vigil /data
# By number, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001

EXPOSE 3000 9108 9095

# Lineage, last so a new commit reuses every layer above: `docker inspect` shows which commit,
# which lock and which version an image was built from (.github/workflows/release.yml sets them).
ARG VERSION=0.0.0+local
ARG GIT_COMMIT=unknown
ARG UV_LOCK_SHA256=unknown
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Vigil: model serving and drift monitoring" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      dev.vigil.uv-lock.sha256="${UV_LOCK_SHA256}"
CMD ["vigil", "serve", "--host", "0.0.0.0"]
