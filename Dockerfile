# kubemeter's container image: one statically linked binary, the CA bundle, a non-root user.
#
# The binary is built before the image, not inside it (`make image` does both): it is linked
# statically against glibc (`-C target-feature=+crt-static`), so the image needs no libc and
# builds on any base, `scratch` included, without pulling a builder image. The build context
# is the folder `scripts/image.sh context` stages (target/image/context):
#
#   kubemeter                    the binary
#   rootfs/etc/passwd, group     the user `kubemeter` (65532), for tools that look names up
#   rootfs/etc/ssl/certs/ca-certificates.crt   the build machine's CA bundle
#   data/                        an empty folder, the default KUBEMETER_DATA_DIR
#
#   make image                                  # podman (or CONTAINER_TOOL=docker)
#   docker build -f Dockerfile target/image/context
#
# Templates are compiled into the binary (askama) and the stylesheet is embedded, so nothing
# else is needed at run time. The root filesystem may be read-only: logs go to stdout only
# (KUBEMETER_LOG_DIR is empty), and data lives in /var/lib/kubemeter (mount a volume there, or
# use PostgreSQL for `serve`).
ARG RUNTIME_BASE=scratch
FROM ${RUNTIME_BASE}
ARG VERSION=unknown
LABEL org.opencontainers.image.title="kubemeter" \
      org.opencontainers.image.description="Meters what every Kubernetes workload uses, for chargeback." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY rootfs/ /
COPY kubemeter /usr/local/bin/kubemeter
COPY --chown=65532:65532 data/ /var/lib/kubemeter/
ENV KUBEMETER_LISTEN=0.0.0.0:8000 \
    KUBEMETER_METRICS_LISTEN=0.0.0.0:9464 \
    KUBEMETER_DATA_DIR=/var/lib/kubemeter \
    KUBEMETER_LOG_DIR="" \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/var/lib/kubemeter
WORKDIR /var/lib/kubemeter
USER 65532:65532
EXPOSE 8000 9464
ENTRYPOINT ["/usr/local/bin/kubemeter"]
CMD ["serve"]
