# imagine-bot: one image for the single-machine bot (`imagine-bot run`) and for
# extra workers (`imagine-bot worker`). See README "Running it for real" and
# compose.yaml. The Python minor is the one CI tests (3.11).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or
# constraints.txt change, not on every source edit. The list comes from
# pyproject.toml; the exact versions from constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the bot itself (its dependencies are already in place).
COPY README.md ./
COPY bots ./bots
COPY core ./core
COPY storage ./storage
RUN pip install --no-deps -c constraints.txt . \
    && useradd --create-home --uid 10001 imagine \
    && mkdir -p /data \
    && chown imagine:imagine /data

# Everything the bot keeps lives in the /data volume: the SQLite database (unless
# DATABASE_URL names PostgreSQL), job files under /data/files and the console's
# and command line's results under /data/out. Set here so that a `.env` which
# leaves these settings commented out (as .env.example does) keeps them.
ENV DATABASE_URL=sqlite:////data/imagine-bot.sqlite3 \
    DATA_DIR=/data \
    OUTPUT_DIR=/data/out \
    HEALTH_LISTEN=127.0.0.1:9090

USER imagine
VOLUME ["/data"]
# Optional: the Telegram webhook (TELEGRAM_WEBHOOK_LISTEN) and the short-lived image
# links (PUBLIC_LISTEN). Publish them only when those features are on.
EXPOSE 8443 8080
# Liveness through the health endpoint (HEALTH_LISTEN, see .env.example): the image
# has no curl, so Python asks /livez. A wildcard address is asked on 127.0.0.1; an
# endpoint switched off (HEALTH_LISTEN empty) has nothing to check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; a = os.environ.get('HEALTH_LISTEN', ''); h, _, p = a.rpartition(':'); h = '127.0.0.1' if h in ('', '0.0.0.0', '[::]') else h; a and urllib.request.urlopen(f'http://{h}:{p}/livez', timeout=4)"]
CMD ["imagine-bot", "run"]
