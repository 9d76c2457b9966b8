# Remora sidecar image. `build` runs what a checkout needs (npm ci with the native addon, npm run build, npm prune);
# the default target is the slim image (the Node base + iptables + the app), `--target distroless` a distroless-style
# variant (node, iptables, the libraries they load, the app: no shell, no package manager). Both run as UID 1337 (the
# UID the capture rules exempt) and start `remora`; docs/operations.md "The image" has their sizes and how CI runs them.
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
COPY native/binding.gyp native/original_dst.c native/resident.c native/heap.cc ./native/
RUN npm ci && test -f native/build/Release/remora_net.node
COPY tsconfig.json tsconfig.build.json rolldown.config.mjs ./
COPY src ./src
# After the prune: type declarations, source maps and markdown of the dependencies are never loaded at run time
# (the node_modules layer: 96.5 → 43.8 MB); the image test loads every production dependency to prove it.
RUN npm run build && npm prune --omit=dev \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' \) -delete \
 && find node_modules -depth -type d -empty -delete

# Both variants: iptables for the remora-init container (`remora iptables --apply`, root with NET_ADMIN).
FROM ${NODE_IMAGE} AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*

FROM runtime-base AS distroless-root
COPY scripts/distroless-root.sh /tmp/distroless-root.sh
RUN sh /tmp/distroless-root.sh /out

# The distroless-style variant: `--target distroless`, tagged <version>-distroless.
FROM scratch AS distroless
COPY --from=distroless-root /out /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
ENV NODE_ENV=production
# The same as the benchmarks' (bench/run.ts): a 2 MB young generation and one V8 worker thread keep the sidecar's
# private memory under load ~3 MB lower than a 4 MB young generation and a worker per core, at the same CPU per request
# (docs/performance.md, "One service: idle and at max throughput"). The injected sidecar adds --max-old-space-size=96
# for its 128 Mi memory limit.
ENV NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=1"
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build/Release/remora_net.node ./native/build/Release/remora_net.node
USER 1337:1337
# outbound capture, inbound, health (/healthz/ready), Prometheus stats. Admin (15000) stays on 127.0.0.1.
EXPOSE 15001 15006 15021 15090
# The injected startup and readiness probes ask the same URL (src/inject/inject.ts); Kubernetes ignores HEALTHCHECK.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["remora", "wait", "--timeout", "2s", "--url", "http://127.0.0.1:15021/healthz/ready"]
ENTRYPOINT ["remora"]
CMD ["run", "--config", "/etc/remora/config"]

# The default target: the slim image.
FROM runtime-base
WORKDIR /app
ENV NODE_ENV=production
# The same as the benchmarks' (bench/run.ts): a 2 MB young generation and one V8 worker thread keep the sidecar's
# private memory under load ~3 MB lower than a 4 MB young generation and a worker per core, at the same CPU per request
# (docs/performance.md, "One service: idle and at max throughput"). The injected sidecar adds --max-old-space-size=96
# for its 128 Mi memory limit.
ENV NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=1"
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build/Release/remora_net.node ./native/build/Release/remora_net.node
# dist/cli.js has a "#!/usr/bin/env -S node …" shebang; the symlink puts `remora` on PATH without npm link.
RUN chmod 0755 /app/dist/cli.js && ln -s /app/dist/cli.js /usr/local/bin/remora
USER 1337:1337
# outbound capture, inbound, health (/healthz/ready), Prometheus stats. Admin (15000) stays on 127.0.0.1.
EXPOSE 15001 15006 15021 15090
# The injected startup and readiness probes ask the same URL (src/inject/inject.ts); Kubernetes ignores HEALTHCHECK.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["remora", "wait", "--timeout", "2s", "--url", "http://127.0.0.1:15021/healthz/ready"]
ENTRYPOINT ["remora"]
CMD ["run", "--config", "/etc/remora/config"]
