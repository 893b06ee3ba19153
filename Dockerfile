# bacula-exporter image: built in one stage, run from another that has no compiler, no pip and
# no build tools, but Bacula's console program. Runs as an unprivileged user with a read-only root filesystem; the only
# writable path it needs is the state volume /var/lib/bacula-exporter (the ticket outbox).
# tests/test_packaging.py lints this file and repeats its install steps.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# The build tools, pinned, in a venv of their own that stays in this stage.
COPY requirements-build.lock ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir -r requirements-build.lock

# The runtime venv gets no pip of its own; the build venv's pip installs into it. Dependencies
# first (pinned), so that a change of the code does not download them again.
COPY requirements.lock ./
RUN python -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-cache-dir \
        -r requirements.lock

COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation \
        --wheel-dir /wheels . \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-deps \
        /wheels/*.whl \
    && /opt/build/bin/pip --python /opt/venv/bin/python check


FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="bacula-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Bacula and Bareos catalogs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:9625/healthz

# bconsole (Debian's bacula-console) reads the Directors' live state (docs/director.md): Bacula's
# own console speaks every release's protocol and TLS, including the TLS-PSK of Bacula 12 and
# later, which Python's ssl lacks. Bookworm's 9.6.7 logs in to Directors up to 15.0.3 without
# TLS. Pinned like the Python dependencies; no recommends, no apt lists left in the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bacula-console=9.6.7-7 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bacula-exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/bacula-exporter --shell /usr/sbin/nologin bacula-exporter \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/bacula-exporter

COPY --from=build /opt/venv /opt/venv
COPY docker/config.yml /etc/bacula-exporter/config.yml

USER 10001:10001
WORKDIR /var/lib/bacula-exporter
VOLUME ["/var/lib/bacula-exporter"]
EXPOSE 9625

# Python is all the image has to ask /healthz with; set HEALTHCHECK_URL when listen changes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["bacula-exporter"]
# Basic auth and TLS as every Prometheus exporter takes them: mount a web config and add
#   --web.config.file /etc/bacula-exporter/web.yml
# (docs/configuration.md#web_config_file). /healthz stays open for the HEALTHCHECK above.
CMD ["--config", "/etc/bacula-exporter/config.yml"]
