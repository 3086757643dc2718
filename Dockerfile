# botjobs image: botjobs-producer, botjobs-worker (with botjobs-sandbox next to it), botjobsctl, the demo bot
# and the API documentation.
#   docker build -t botjobs .
# Build on Debian 12 with its -dev packages; run on debian:12-slim with the runtime libraries only.

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
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libjansson4 libmujs2 libpq5 libmicrohttpd12 libcurl4 libseccomp2 tzdata ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin botjobs
COPY --from=build /src/bin/ /usr/local/bin/
COPY examples /usr/share/botjobs/examples
COPY --from=docs /src/build/docs /usr/share/botjobs/docs
ENV BOTJOBS_DOCS_DIR=/usr/share/botjobs/docs
# Nothing is written to the file system: a read-only root works. Logs go to stderr.
USER 10001
EXPOSE 8080 9091
ENV BOTJOBS_LOG_FORMAT=json
# The producer's port; the worker service overrides it (9091).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["botjobs-producer"]
