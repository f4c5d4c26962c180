# syntax=docker/dockerfile:1
# Embargo's image for those who build with Docker (BuildKit). It has the layout `make image`
# assembles without any container engine (internal/imagebuild), which is the path the project
# builds and tests: /manager (the entrypoint) and /embargo (the CLI), static binaries on
# distroless/static:nonroot (user 65532, CA certificates, a sticky /tmp). No engine runs on the
# project's CI machines, so this file is not exercised there.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     --build-arg CREATED=$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd) \
#     --output type=image,name=REGISTRY/embargo:TAG,push=true,rewrite-timestamp=true .
#
# SOURCE_DATE_EPOCH stamps the config and history; rewrite-timestamp=true (BuildKit 0.13+) also
# clamps file times, for a reproducible digest. The digest still differs from `make image`'s: the
# base image's files and layering are distroless's, not ours.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS TARGETARCH TARGETVARIANT
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The flags of the Makefile's GOBUILD.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    if [ "$TARGETARCH" = arm ]; then export GOARM="${TARGETVARIANT#v}"; fi; \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/embargo-dev/embargo/internal/version.Version=${VERSION}" \
      -o /out/ ./cmd/manager ./cmd/embargo

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED
LABEL org.opencontainers.image.source="https://github.com/embargo-dev/embargo" \
      org.opencontainers.image.title="embargo" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/manager /out/embargo /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/ \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/manager"]
