"""gunicorn's settings for the arena web process: `gunicorn --config python:arena.gunicorn_conf --bind ADDR
'arena:create_app()'` (as `make serve` and `make demo` run it; the command line still gives the bind address).

gevent workers: each connection is a greenlet, so clients that send their headers and then stall (a slow
upload, or an attack that opens many such connections) cost a socket each, not a thread: with the threaded
workers, 16 stalled uploads made /healthz time out (tests/reliability/test_slow_clients.py). psycopg and redis-py
cooperate with gevent's monkey-patching (psycopg detects it and waits on the patched select)."""

import os

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", 2))
worker_connections = int(os.environ.get("ARENA_WORKER_CONNECTIONS", 1000))  # open connections per worker
timeout = 60  # a worker whose event loop is blocked this long is restarted
graceful_timeout = 30
keepalive = 5
