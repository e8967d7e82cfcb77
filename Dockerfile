# syntax=docker/dockerfile:1
# ChangeLens: one image running Postgres, Redis, the API (blue and green), the worker and the
# proxy under pm2, supervised by `changelens up`. Data lives in the /data volume.

# --- build: compile the TypeScript, then keep only production dependencies -------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ecosystem.config.js ./
COPY lib ./lib
COPY supervisor ./supervisor
COPY apps ./apps
COPY proxy ./proxy
COPY monitoring ./monitoring
COPY rollout ./rollout
COPY fleet ./fleet
COPY backup ./backup
COPY cli ./cli
COPY bench ./bench
# Then drop what Node never loads at run time: type declarations, TypeScript sources, source maps
# and docs inside node_modules (about 35 MB; licence files stay).
RUN npm run build && npm prune --omit=dev \
 && find node_modules -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.md' -o -name '*.markdown' \) \
      ! -iname 'licen[cs]e*' -delete

# --- runtime: Debian + Node, Postgres and Redis from the same install script CI uses ----------
FROM node:22-bookworm-slim AS runtime
COPY scripts/install-system-deps.sh /usr/local/lib/changelens/install-system-deps.sh
# Kept out, in the same layer (about 400 MB less): apt's caches and lists; Postgres's JIT — LLVM and
# z3 (130 MB) and its bitcode — which ChangeLens turns off (jit=off); perl, which only Debian's
# pg_wrapper scripts use (ChangeLens runs the binaries in /usr/lib/postgresql/*/bin); locales, docs
# and man pages (Postgres runs with the C locale). Packages removed with --force-depends: an image
# built FROM this one that needs apt-get should start with `apt-get install -f`. Nothing outside
# /data and /tmp is writable by the service user: /var/tmp is /tmp, /run/lock is closed.
RUN /usr/local/lib/changelens/install-system-deps.sh \
 && dpkg --purge --force-depends $(dpkg-query -W -f '${db:Status-Status} ${Package}\n' \
      'libllvm*' 'libz3-*' perl 'perl-modules-*' 'libperl5*' locales 2>/dev/null | awk '$1 == "installed" { print $2 }') \
 && rm -rf /usr/lib/postgresql/*/lib/llvmjit* /usr/lib/postgresql/*/lib/bitcode \
      /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
      /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/postgresql/*/man \
 && groupadd --system --gid 10001 changelens \
 && useradd --system --uid 10001 --gid changelens --home-dir /data --shell /usr/sbin/nologin changelens \
 && mkdir -p /data \
 && chown changelens:changelens /data \
 && rm -rf /var/tmp && ln -s /tmp /var/tmp && chmod 0755 /run/lock
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY cloudbaserc.json ./cloudbaserc.json
# `docker exec <container> changelens status` works from anywhere.
RUN ln -s /app/dist/cli/main.js /usr/local/bin/changelens
# The supervisor starts as root and keeps root to itself: Postgres, Redis and the proxy run as
# changelens (10001), the releases (each colour's API and worker, uploaded apps) as changelens-app, which the
# install script made and which can read nothing of /data but the releases. `docker run --user
# 10001` works too, without that separation (status says so).
ENV NODE_ENV=production \
    PORT=8080 \
    CHANGELENS_DATA_DIR=/data \
    CHANGELENS_SERVICE_USER=changelens
VOLUME /data
EXPOSE 8080
# Readiness, not liveness: ready means the proxy reaches an API that reaches Postgres and Redis.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# tini is PID 1: it reaps zombies and hands SIGTERM to the supervisor, which stops everything in order.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/cli/main.js", "up"]
