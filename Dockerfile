# TorchBricks Serve image: Debian 12 with libtorch 1.13 (CPU), the server and the CLI.
#
#   docker build -t torchbricks-serve .
#   docker run -p 8001:8001 -v $PWD/examples/repository:/models torchbricks-serve
#
# Stage 1 builds with the project's own setup script; stage 2 carries only runtime packages.
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates \
 && TORCHBRICKS_SKIP_NODE=1 bash scripts/setup.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCHBRICKS_WERROR=OFF \
 && cmake --build build --target torchbricks-server torchbricks --parallel

FROM debian:bookworm
# libtorch1.13 brings libtorch's own dependencies; libopenblas0-openmp keeps convolutions off
# the reference BLAS (about 5x faster, DESIGN §7). OpenCV decodes image inputs and draws and
# encodes visualizations; cpp-httplib serves /metrics.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends libtorch1.13 libopenblas0-openmp \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libcpp-httplib0.11 libgomp1 \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/server/torchbricks-server /src/build/tools/torchbricks /usr/local/bin/
RUN useradd --system --uid 10001 serve
USER serve
EXPOSE 8001
# Kubernetes probes the gRPC health service (deploy/kubernetes/deployment.yaml).
ENTRYPOINT ["torchbricks-server", "--grpc-port", "8001"]
CMD ["--model-repository", "/models"]
