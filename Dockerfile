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
USER vigil

EXPOSE 3000 9108 9095
CMD ["python", "-m", "service", "serve", "--host", "0.0.0.0"]
