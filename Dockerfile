# tagward's container image: one static (musl) binary and the built, precompressed site, nothing else:
# no shell, no package manager, no libc. Built by `scripts/dev image` from a staging directory whose
# `rootfs/` holds `tagward` and `site/` (the context is never the repository): one COPY of one tree
# with the commit's file times, so two builds of a commit give the same layer digest. One image runs every command:
#   docker run … tagward:dev migrate | serve | gateway --upstream http://registry:5000
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/tagward/tagward
LABEL org.opencontainers.image.title="tagward" \
      org.opencontainers.image.description="Tag immutability for container registries: portal, decision API and enforcing OCI gateway" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY rootfs/ /

# Listen on every interface inside the container (the defaults outside one are loopback only).
# The healthcheck asks whichever of the two listeners is up.
ENV LEPTOS_SITE_ROOT=/site \
    TAGWARD_ADDR=0.0.0.0:3000 \
    TAGWARD_GATEWAY_LISTEN=0.0.0.0:5001
EXPOSE 3000 5001

# Not root; a number, since a scratch image has no /etc/passwd. Nothing is written to the
# filesystem, so the root filesystem can be read-only.
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/tagward", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/tagward"]
CMD ["serve"]
