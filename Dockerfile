# The web and worker image of the arena platform (the same image runs either: see the CMD and the Procfile).
#   docker build -t arena .
#   docker run -e DATABASE_URL=postgresql://... -e REDIS_URL=redis://... -e SECRET_KEY=... -p 8000:8000 arena
#   docker run ... arena flask --app arena worker
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    ARENA_INSTANCE=/data/instance ARENA_STORAGE_DIR=/data/storage

RUN useradd --create-home --uid 10001 arena && mkdir -p /data && chown arena /data
WORKDIR /app

# dependencies first (a layer that survives source edits); the web extra only: no torch in this image
COPY pyproject.toml README.md constraints.txt ./
COPY scorer/ scorer/
COPY platform/ platform/
COPY migrations/ migrations/
COPY challenges/ challenges/
RUN mkdir -p facedata baselines starter_kit \
    && touch facedata/__init__.py baselines/__init__.py starter_kit/__init__.py \
    && pip install -c constraints.txt '.[web]'

USER arena
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["sh", "-c", "flask --app arena db upgrade && exec gunicorn --config python:arena.gunicorn_conf --bind 0.0.0.0:8000 'arena:create_app()'"]
