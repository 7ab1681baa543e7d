# syntax=docker/dockerfile:1
# Martinique Connect: one image for every component (IdP, archival service, catalogue,
# console); the Helm chart chooses the command (serve, db upgrade). See docs/deploiement.md.
#
#   docker build -t martinique-connect:0.1.0 .
#   docker run --rm -p 127.0.0.1:8000:8000 -e MC_ISSUER=http://127.0.0.1:8000 martinique-connect:0.1.0

# A pinned Debian release of Python 3.11 (the version the project is tested with), never
# "latest"; override with --build-arg PYTHON_IMAGE=<registry mirror>/python:3.11-slim-bookworm.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: compilers allowed here, the project and its pinned dependencies in a venv ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Debian's security updates replace package versions in place: pinning them would break the
# build, and this stage is thrown away.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libffi-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The pinned versions first: the layer of dependencies is rebuilt only when they change.
COPY constraints.txt pyproject.toml README.md ./
COPY martinique_connect/ martinique_connect/
COPY plateforme/ plateforme/
COPY idp/ idp/
COPY archivage/ archivage/
COPY services_mutualises/ services_mutualises/
COPY admin_ui/ admin_ui/
COPY demo_rp/ demo_rp/
RUN pip install -c constraints.txt . \
 && python -m compileall -q /opt/venv/lib

# --- runtime: slim, no compilers, non-root ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="Martinique Connect" \
      org.opencontainers.image.description="Fournisseur d'identité, archivage et services mutualisés de la CTM" \
      org.opencontainers.image.licenses="EUPL-1.2"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MC_DATA_DIR=/var/lib/martinique-connect \
    MC_HOST=0.0.0.0 \
    MC_PORT=8000 \
    MC_LOG_FORMAT=json
RUN groupadd --system --gid 10001 mc \
 && useradd --system --uid 10001 --gid mc --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin mc \
 && mkdir -p /var/lib/martinique-connect \
 && chown mc:mc /var/lib/martinique-connect \
 && chmod 0750 /var/lib/martinique-connect
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/martinique-connect
# SQLite, the generated secret key and the outbox in the embedded mode; scratch space only
# when PostgreSQL, Redis and S3 are configured (the Helm chart mounts an emptyDir here).
VOLUME ["/var/lib/martinique-connect"]
EXPOSE 8000
# Python exits with 1 when /healthz does not answer 200 within 2 s.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MC_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["martinique-connect"]
CMD ["serve"]
