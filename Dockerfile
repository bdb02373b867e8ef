# Serving image: the FastAPI service and the shipped models, nothing from training/.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml ./
# Install the service's dependencies named in pyproject.toml (the base list and the server
# extra; not the package itself, which would also bring the training code); the app/ sources
# are copied in the final stage. No TensorFlow: the shipped versions are served by LiteRT
# (app/models/litert.py); a mounted version without LiteRT graphs is refused, saying why.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" > requirements.txt \
    && pip install -r requirements.txt

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin latentserve
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY app ./app
# Baked-in models; mount a repository over /srv/models to serve others.
COPY models ./models
# The similarity graphs of the baked-in versions, built now (no TensorFlow needed) so that
# starts open them memory-mapped instead of building them. Outside /srv/models, so that a
# repository mounted there (compose mounts ./models) still finds the graphs of the same
# versions; compose puts a writable volume here for the graphs of other versions.
RUN /opt/venv/bin/python -m app.models.graphs /srv/models /srv/index-cache \
    && chown -R 10001 /srv/index-cache
# HOME on /tmp: with a read-only root filesystem (compose's default here) only the tmpfs
# mounted on /tmp is writable, and libraries write caches under HOME.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    LATENTSERVE_HOST=0.0.0.0 \
    LATENTSERVE_PORT=8000 \
    LATENTSERVE_GRPC_PORT=8001 \
    LATENTSERVE_MODEL_REPOSITORY=/srv/models \
    LATENTSERVE_INDEX_CACHE_DIR=/srv/index-cache
USER 10001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LATENTSERVE_PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "app"]
