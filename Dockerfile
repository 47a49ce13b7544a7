# kproxy's image: kproxy as PID 1 on Debian 12 with the netfilter tools of every mode.
#   tools/image/build.sh builds it from a clean checkout (podman here; `docker build .` works the same).
# Stage 1 installs the production dependencies with the official Node image's npm; stage 2 is the runtime.
FROM node:24-bookworm-slim AS build
WORKDIR /out/deps
COPY package.json package-lock.json .npmrc ./
# Production dependencies only: TypeScript runs through Node's type stripping, nothing is compiled.
# Type declarations and source maps are never loaded at run time (a third of the dependencies' size).
RUN npm ci --omit=dev --no-audit --no-fund && rm -f package-lock.json .npmrc \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete \
 && find node_modules -type d -empty -delete
# Everything .dockerignore lets through: the program's folders (bin, src, controllers, kit, modes, image, …),
# so a new source folder is in the image without a change here.
WORKDIR /out/app
COPY . .
RUN rm -f package-lock.json .npmrc tsconfig.json

FROM debian:bookworm-slim
# iptables brings both variants (iptables-legacy, iptables-nft); nftables, ipset, conntrack, nfacct (the counter of
# the iptables mode's INVALID drop), iproute2 and kmod are what the modes run; ipvsadm is for people inspecting an
# ipvs node (kproxy itself speaks netlink) and for taking over from kube-proxy's ipvs mode.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables ipset conntrack nfacct iproute2 kmod ipvsadm \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /out/deps/ /opt/kproxy/
COPY --from=build /out/app/ /opt/kproxy/
# iptables* and ip6tables* start as image/iptables-wrapper.sh, which switches them to the variant kproxy uses.
RUN for family in iptables ip6tables; do \
      update-alternatives --quiet --install "/usr/sbin/$family" "$family" /opt/kproxy/image/iptables-wrapper.sh 100 \
        --slave "/usr/sbin/$family-restore" "$family-restore" /opt/kproxy/image/iptables-wrapper.sh \
        --slave "/usr/sbin/$family-save" "$family-save" /opt/kproxy/image/iptables-wrapper.sh \
   && update-alternatives --quiet --set "$family" /opt/kproxy/image/iptables-wrapper.sh || exit 1; \
    done \
 && ln -s /opt/kproxy/bin/kproxy.js /usr/local/bin/kproxy
LABEL org.opencontainers.image.title="kproxy" \
      org.opencontainers.image.description="A kube-proxy replacement: iptables, nftables, ipvs and userspace modes" \
      org.opencontainers.image.licenses="Apache-2.0"
# bin/kproxy.js's shebang (`env -S MALLOC_ARENA_MAX=1 node --max-semi-space-size=4`) sets the runtime flags, so
# the image runs with exactly the flags of every other start; env execs node, which stays PID 1 and handles SIGTERM.
ENTRYPOINT ["/opt/kproxy/bin/kproxy.js"]
