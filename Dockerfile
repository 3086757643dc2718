# botjobs image: botjobs-producer, botjobs-worker (with botjobs-sandbox next to it), botjobsctl, the demo bot
# and the API documentation, in one image.
#   docker build -t botjobs .
#   docker build --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ) -t botjobs .
# Build on Debian 12 with its -dev packages; run on debian:12-slim with the runtime libraries only.
#
# Run-time contract (docs/operations.md, "Containers"):
# - runs as uid/gid 10001 (no shell, no home); nothing is written to the file system: a read-only root
#   works and no tmpfs is needed (logs go to stderr; checked with strace over a producer and a worker with
#   its sandbox children: no file opened for writing, created, renamed or removed);
# - the worker forks its sandbox children (botjobs-sandbox, locked down with PR_SET_NO_NEW_PRIVS and seccomp):
#   no capability is needed, and the runtime's default seccomp profile allows it;
# - the command is the binary itself: it is PID 1, handles SIGTERM itself (graceful drain) and reaps its
#   sandbox children;
# - the health check asks /healthz on the producer's port, or else the worker's.
# Expected size: ~97 MB uncompressed, ~36 MB compressed (debian:12-slim ~75 MB + ~18 MB of runtime
# packages + ~2.5 MB of API docs + <1 MB of binaries); docs/operations.md says how that was estimated.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config librdkafka-dev libjansson-dev libmujs-dev libpq-dev libmicrohttpd-dev \
      libcurl4-openssl-dev libseccomp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY producer producer
COPY worker worker
COPY ctl ctl
COPY sandbox sandbox
COPY schemas schemas
COPY tools tools
RUN make -j"$(nproc)" WERROR=1 all && strip bin/*

# The API documentation page (/api/docs): the OpenAPI document, the JSON Schemas and Swagger UI's static files
# (npm package swagger-ui-dist, pinned and checked by scripts/swagger-ui.sh). npm is needed only here.
FROM node:20-bookworm-slim AS docs
WORKDIR /src
COPY scripts/docs.sh scripts/swagger-ui.sh scripts/
COPY schemas schemas
COPY web web
RUN bash scripts/docs.sh build/docs

FROM debian:12-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="botjobs" \
      org.opencontainers.image.description="Job scheduler for chat bots: botjobs-producer (HTTP -> Kafka), botjobs-worker (Kafka -> PostgreSQL -> bot JavaScript in sandboxes), botjobsctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/debian:12-slim" \
      org.opencontainers.image.documentation="docs/operations.md"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libjansson4 libmujs2 libpq5 libmicrohttpd12 libcurl4 libseccomp2 tzdata ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 botjobs \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin botjobs
COPY --from=build /src/bin/ /usr/local/bin/
COPY examples /usr/share/botjobs/examples
COPY --from=docs /src/build/docs /usr/share/botjobs/docs
ENV BOTJOBS_DOCS_DIR=/usr/share/botjobs/docs
USER 10001:10001
# 8080: the producer's API, /healthz, /readyz, /metrics. 9091: the worker's /healthz, /readyz, /metrics.
EXPOSE 8080 9091
ENV BOTJOBS_LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${BOTJOBS_HTTP_PORT:-8080}/healthz" \
   || curl -fsS -o /dev/null "http://127.0.0.1:${BOTJOBS_WORKER_HTTP_PORT:-9091}/healthz" || exit 1
CMD ["botjobs-producer"]
