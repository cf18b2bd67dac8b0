# TorchBricks Serve image: Debian 12 with libtorch 1.13 (CPU), the server, the `torchbricks`
# CLI and the health probe, running as uid 10001 on a read-only root filesystem if asked.
#
#   docker build -t torchbricks-serve .
#   docker run -p 8001:8001 -p 8002:8002 -v $PWD/examples/repository:/models:ro \
#       --read-only --stop-timeout 40 torchbricks-serve
#
# Stage 1 compiles with the project's own setup script (its build packages only); stage 2
# carries runtime libraries only: no compiler, no headers. deploy/docker/test.sh builds and
# runs it; docs/DEPLOY.md has its size and build times.
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 before): the build
# folder and apt's downloads live in cache mounts, so a rebuild after a source change
# compiles only what changed.
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN --mount=type=cache,id=torchbricks-apt-build,target=/var/cache/apt/archives,sharing=locked \
    TORCHBRICKS_SETUP_BUILD_ONLY=1 bash scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,id=torchbricks-build,target=/build \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCHBRICKS_WERROR=OFF > /dev/null \
 && cmake --build /build --parallel \
      --target torchbricks-server --target torchbricks --target torchbricks-health-probe \
 && mkdir /out \
 && cp /build/server/torchbricks-server /build/tools/torchbricks \
       /build/tools/torchbricks-health-probe /out/ \
 && strip /out/*

FROM debian:bookworm AS final
# libtorch1.13 brings libtorch's own dependencies; libopenblas0-openmp keeps convolutions off
# the reference BLAS (about 5x faster, DESIGN §7). libjpeg-turbo and libpng decode image
# inputs and encode visualizations, which OpenCV's core and imgproc draw (imgcodecs is still
# here because Debian's libtorch 1.13 links it). The ldd check fails the build when a library
# is missing.
RUN --mount=type=cache,id=torchbricks-apt-runtime,target=/var/cache/apt/archives,sharing=locked \
    apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libtorch1.13 libopenblas0-openmp libgomp1 libgoogle-glog0v6 \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 \
      libjpeg62-turbo libpng16-16 > /dev/null \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
COPY --from=build /out/ /usr/local/bin/
RUN ! ldd /usr/local/bin/torchbricks-server /usr/local/bin/torchbricks \
        /usr/local/bin/torchbricks-health-probe | grep "not found" \
 && groupadd --system --gid 10001 serve \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin serve
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
# The gRPC port the HEALTHCHECK asks; change it together with --grpc-port.
ENV TORCHBRICKS_GRPC_PORT=8001
EXPOSE 8001 8002
# SIGTERM (docker stop) drains: readiness off, in-flight requests finish within
# --shutdown-timeout-secs. Give `docker stop -t` / `--stop-timeout` more than that.
STOPSIGNAL SIGTERM
# grpc.health.v1 readiness ("" = every model loaded and serving), by our probe binary.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD torchbricks-health-probe --addr "127.0.0.1:${TORCHBRICKS_GRPC_PORT}" --timeout-ms 3000
ENTRYPOINT ["torchbricks-server"]
CMD ["--model-repository", "/models", "--grpc-port", "8001", "--metrics-port", "8002", \
     "--shutdown-timeout-secs", "30"]
