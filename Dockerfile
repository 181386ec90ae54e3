# driftline's image: every service of docker-compose.yml runs a `driftline` command in it.
# The build stage compiles the optional C extension (driftline.detectors._fold) and the
# wheels; the runtime stage installs them without a compiler and runs as a non-root user.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels driftline \
 && rm -rf /wheels
# The state, trainer and registry folders exist, owned by the service user, so the named
# volumes compose mounts on them start with that owner.
RUN useradd --create-home --uid 10001 driftline \
 && mkdir -p /etc/driftline /var/lib/driftline/state /var/lib/driftline/trainer \
    /var/lib/driftline/registry \
 && chown -R driftline:driftline /var/lib/driftline
USER driftline
WORKDIR /var/lib/driftline
CMD ["driftline", "--help"]
