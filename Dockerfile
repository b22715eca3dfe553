# The manager image: a static binary on distroless, running as a non-root user.
#   docker build -t registry.example.com/routeopt-operator:v0.1.0 --build-arg VERSION=v0.1.0 .
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 ...
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Dependencies first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/

# CGO off: the binary is static and runs on distroless/static.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o manager ./cmd

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
# 65532 is the nonroot user of distroless; numeric, so runAsNonRoot can verify it.
USER 65532:65532

ENTRYPOINT ["/manager"]
