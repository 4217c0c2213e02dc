# Outpost's container image: one image for every role (edge, shield, load balancer, demo origin);
# the command picks the role. docker-compose.yml runs a whole CDN from it; docs/deployment.md.
FROM node:24-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so that a source change does not reinstall them. --ignore-scripts: the
# native modules (isolated-vm, lmdb) ship prebuilt linux-x64 binaries, and the `node` package's
# own install step is not needed when the image already brings Node 24. `npm install` rather than
# `npm ci`, as CI installs: the lockfile leaves out msgpackr-extract's other-platform packages,
# which `npm ci` counts as out of sync; the versions still come from the lockfile.
COPY package.json package-lock.json ./
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY examples ./examples

# The disk cache, the embedded CU store and the self-signed certificate live in /var/lib/outpost
# (mount a volume to keep them); .outpost/, where the defaults put them, points there.
RUN mkdir -p /var/lib/outpost && chown node:node /var/lib/outpost && ln -s /var/lib/outpost /app/.outpost
USER node

# 8080 edge (HTTP/1.1), 8443 edge (TLS, h2), 8081 admin API and /metrics, 9000 demo origin.
EXPOSE 8080 8443 8081 9000

# Roles that do not serve the edge on 8080 (the demo origin) set OUTPOST_HEALTH_URL.
ENV OUTPOST_HEALTH_URL=http://127.0.0.1:8080/health
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.OUTPOST_HEALTH_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "--no-node-snapshot", "src/cli.ts"]
CMD ["start"]
