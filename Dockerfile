# Remora sidecar image: multi-stage; the runtime stage has only dist/ (the bundled build), production node_modules and
# package.json, runs as UID 1337 (the UID the iptables rules exempt) and starts `remora`.
#
# Base: Node.js 24 LTS. On 2026-11-22 Node 26 is the Active LTS line, but opossum 9 (our Node 20 pin)
# declares engines "^24 || ^22 || ^20" and .npmrc has engine-strict, so 24 (LTS until 2028-04-30)
# is the newest line every dependency supports. Override with --build-arg NODE_IMAGE=….
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
# python3, make and g++: npm ci builds native/ (the SO_ORIGINAL_DST addon for transparent capture) with node-gyp
# against the image's own Node headers (/usr/local/include/node), offline.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY scripts/build-native.mjs ./scripts/
COPY native/binding.gyp native/original_dst.c ./native/
RUN npm ci && test -f native/build/Release/remora_net.node
COPY tsconfig.json tsconfig.build.json rolldown.config.mjs ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
# iptables: for the remora-init container (`remora iptables --apply`), which runs as root with NET_ADMIN.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# A 4 MB young generation keeps the sidecar's RSS about 20 MB lower under load (docs/benchmarks.md).
ENV NODE_OPTIONS=--max-semi-space-size=2
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build/Release/remora_net.node ./native/build/Release/remora_net.node
# dist/cli.js has a "#!/usr/bin/env node" shebang; the symlink puts `remora` on PATH without npm link.
RUN chmod 0755 /app/dist/cli.js && ln -s /app/dist/cli.js /usr/local/bin/remora
USER 1337:1337
# outbound capture, inbound, health (/healthz/ready), Prometheus stats. Admin (15000) stays on 127.0.0.1.
EXPOSE 15001 15006 15021 15090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["remora", "wait", "--timeout", "2s", "--url", "http://127.0.0.1:15021/healthz/ready"]
ENTRYPOINT ["remora"]
CMD ["run", "--config", "/etc/remora/config"]
