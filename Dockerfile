# mcp-pa in HTTP mode (`mcp-pa serve`): MCP over HTTPS with OAuth 2.1, on PostgreSQL + pgvector.
# Build from the repository root:   docker build -t mcp-pa .
# Run it (with deploy/compose.yaml, or alone) as docs/deployment.md describes.
#
# Node.js 20 on Debian 12: glibc, which better-sqlite3's and @node-rs/argon2's prebuilt binaries need. Pin a digest
# (node:20-bookworm-slim@sha256:…) for reproducible builds; every stage uses the same image.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile the TypeScript and bundle dist/ (needs the dev dependencies) ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts skips the package's own `prepare` script, which is the build itself and needs the sources copied
# below. The one dev dependency with an install script, esbuild (it checks its platform binary), runs it by name.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/bundle.mjs ./scripts/bundle.mjs
COPY src ./src
RUN npm run build

# ---- deps: the production dependencies only, native modules built for this image ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# A compiler for better-sqlite3 when no prebuilt binary fits the platform; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --ignore-scripts skips `prepare` (the build, done in its own stage). better-sqlite3 is the one production dependency
# with an install script (download its prebuilt binary, else compile), so it is rebuilt by name. @node-rs/argon2 comes
# as a prebuilt platform package and PGlite is WebAssembly: neither runs a script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3

# ---- runtime: Node.js, dist/, the production node_modules; nothing else ----
FROM ${NODE_IMAGE} AS runtime
# An unprivileged account with fixed numeric ids (so volume ownership is predictable and Kubernetes' runAsNonRoot can
# check USER). /data is the only place the server writes to; the image mounts a volume there.
RUN groupadd --system --gid 10001 mcp-pa \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin mcp-pa \
 && mkdir /data \
 && chown 10001:10001 /data \
 && chmod 0700 /data
WORKDIR /app
# Owned by root, read-only to the service user: the application never writes to the image, so the container can run
# with a read-only root filesystem. package.json is needed at run time ("type": "module", and the version).
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# MCP_DATA_DIR: the data folder (the embedded PGlite database, a generated secret.key or --dev certificate, documents
# when MCP_DOCS_DIR points inside it). With PostgreSQL, MCP_SECRET_KEY set and certificates mounted, nothing is
# written there at all. MCP_HOST: every interface of the container, so a published port reaches it (the server then
# requires TLS or trusted proxies, MCP_PUBLIC_URL and MCP_SECRET_KEY, and refuses to start without them).
ENV MCP_DATA_DIR=/data \
    MCP_HOST=0.0.0.0 \
    MCP_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
USER 10001:10001
# Node.js only (no curl in slim images); see deploy/healthcheck.mjs for why the loopback probe skips certificate checks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "/app/deploy/healthcheck.mjs"]
# SIGTERM drains in-flight requests (server.shutdown_grace_s, 10 s) then exits; give `docker stop` more (-t 30).
STOPSIGNAL SIGTERM
# `docker run IMAGE` serves; `docker run IMAGE users add alice` (or keys, clients, audit, config check) runs an admin
# command with the same configuration.
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve"]
