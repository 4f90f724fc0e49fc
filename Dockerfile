FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/imagine-bot.sqlite3 \
    DATA_DIR=/data/files \
    OUTPUT_DIR=/data/out

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bots ./bots
COPY core ./core
COPY storage ./storage
RUN pip install . \
    && useradd --create-home --uid 10001 imagine \
    && mkdir -p /data \
    && chown imagine:imagine /data

USER imagine
VOLUME ["/data"]
# The webhook (8443) and the short-lived image links (8080) are optional.
EXPOSE 8443 8080
CMD ["imagine-bot", "run"]
