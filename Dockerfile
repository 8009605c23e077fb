# Vigil's one image: the prediction service, the drift monitor, training and the webhook
# receiver all run from it (docker-compose.yml picks the command).
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
# Dependencies first: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .

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
CMD ["python", "-m", "service", "serve", "--host", "0.0.0.0"]
