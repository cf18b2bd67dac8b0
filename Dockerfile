# TorchBricks Serve image: Debian 12 with the CPU part of the torch 2.11 wheel, the server, the `torchbricks`
# CLI and the health probe, running as uid 10001 on a read-only root filesystem if asked.
#
#   docker build -t torchbricks-serve .
#   docker run -p 8001:8001 -p 8002:8002 -v $PWD/examples/repository:/models:ro \
#       --read-only --tmpfs /tmp:exec --stop-timeout 40 torchbricks-serve
#
# /tmp: the loader of AOTInductor bricks (.pt2) unpacks each package there and loads a shared
# library from it, so with --read-only give it a tmpfs that allows executing (Docker's default
# tmpfs options include noexec); TorchScript-only repositories need no writable path at all.
#
#   docker build --target gpu -t torchbricks-serve:gpu .   # with the CUDA libraries (docs/DEPLOY.md)
#
# The build stage compiles with the project's own setup script (its build packages only); the
# image carries runtime libraries only: no compiler, no headers. deploy/docker/test.sh builds and
# runs it (the GPU image with --target gpu); docs/DEPLOY.md has sizes and build times.
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 before): the build
# folder and apt's downloads live in cache mounts, so a rebuild after a source change
# compiles only what changed.
FROM debian:bookworm AS deps
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
COPY requirements/python.txt requirements/python.txt
# Debian's build packages, and /src/.venv with the pinned torch wheel (pip's downloads cached).
# The optional secret pip_ca is a CA bundle for pip, where the build host reaches PyPI through
# a TLS-inspecting proxy (deploy/docker/test.sh passes the host's bundle).
RUN --mount=type=cache,id=torchbricks-apt-build,target=/var/cache/apt/archives,sharing=locked \
    --mount=type=cache,id=torchbricks-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && bash scripts/setup.sh build && rm -rf /var/lib/apt/lists/*

FROM deps AS build
COPY . .
# TORCHBRICKS_LINK_CUDA=OFF: the binaries need libtorch_cpu and libc10, not libtorch_cuda.
RUN --mount=type=cache,id=torchbricks-build-wheel,target=/build \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCHBRICKS_WERROR=OFF -DTORCHBRICKS_CCACHE=OFF \
      -DTORCHBRICKS_LINK_CUDA=OFF > /dev/null \
 && cmake --build /build --parallel \
      --target torchbricks-server --target torchbricks --target torchbricks-health-probe \
 && mkdir -p /out/bin /out/lib \
 && cp /build/server/torchbricks-server /build/tools/torchbricks \
       /build/clients/cpp/torchbricks-health-probe /out/bin/ \
 && strip /out/bin/* \
 && torch=$(/src/.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))') \
 && cp -L "$torch/lib/libtorch_cpu.so" "$torch/lib/libc10.so" "$torch/lib/libgomp.so.1" \
       "$torch/../nvidia/cu13/lib/libcudart.so.13" "$torch/../nvidia/cu13/lib/libcupti.so.13" \
       /out/lib/
# An empty libtorch.so, our own. The code inside an AOTInductor package names libtorch.so and
# libtorch_cpu.so as dependencies and has no RUNPATH, so dlopen looks them up in ld.so.cache; it
# binds nothing to libtorch.so (every symbol it takes is in libtorch_cpu, libc10, libgomp or
# Debian's libstdc++), and the wheel's libtorch.so would bring libtorch_cuda and the CUDA
# libraries with it.
RUN gcc -shared -Wl,-soname,libtorch.so -o /out/lib/libtorch.so -x c /dev/null

# The GPU image's binaries: linked with libtorch_cuda kept loaded (TORCHBRICKS_LINK_CUDA=ON), and
# the wheel's torch/lib and nvidia/*/lib shared libraries in their site-packages layout, so the
# RPATHs libtorch_cuda carries ($ORIGIN/../../nvidia/...) find cuBLAS, cuDNN, NCCL and the rest.
# Only `docker build --target gpu` builds this stage.
FROM deps AS build-gpu
COPY . .
RUN --mount=type=cache,id=torchbricks-build-wheel-gpu,target=/build \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCHBRICKS_WERROR=OFF -DTORCHBRICKS_CCACHE=OFF \
      -DTORCHBRICKS_LINK_CUDA=ON > /dev/null \
 && cmake --build /build --parallel \
      --target torchbricks-server --target torchbricks --target torchbricks-health-probe \
 && mkdir -p /out-gpu/bin /out-gpu/site-packages/torch \
 && cp /build/server/torchbricks-server /build/tools/torchbricks \
       /build/clients/cpp/torchbricks-health-probe /out-gpu/bin/ \
 && strip /out-gpu/bin/* \
 && site=$(/src/.venv/bin/python -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))') \
 && cp -a "$site/torch/lib" /out-gpu/site-packages/torch/ \
 && for lib in "$site"/nvidia/*/lib; do \
      to=/out-gpu/site-packages/${lib#"$site"/}; mkdir -p "$to"; \
      find "$lib" -maxdepth 1 -name '*.so*' -exec cp -a {} "$to"/ \; ; \
    done

# What both images run on: runtime libraries only (no compiler, no headers, no Python).
# libjpeg-turbo and libpng decode image inputs and encode visualizations, which OpenCV's core and
# imgproc draw.
FROM debian:bookworm AS runtime
RUN --mount=type=cache,id=torchbricks-apt-runtime,target=/var/cache/apt/archives,sharing=locked \
    apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
      libopencv-core406 libopencv-imgproc406 \
      libjpeg62-turbo libpng16-16 > /dev/null \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 serve \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin serve
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

# The GPU image (docker build --target gpu): the CPU image's contents plus libtorch_cuda, cuBLAS,
# cuDNN, NCCL and the other CUDA libraries of the wheel. Run it with the NVIDIA container runtime
# (docker run --gpus all); without a GPU its models run on the CPU (no instance_group) or are
# UNAVAILABLE (KIND_GPU), as on the host. The ldd check fails the build when a library is missing.
FROM runtime AS gpu
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build-gpu /out-gpu/site-packages/ /opt/torchbricks/site-packages/
RUN { echo /opt/torchbricks/site-packages/torch/lib; ls -d /opt/torchbricks/site-packages/nvidia/*/lib; } \
      > /etc/ld.so.conf.d/torchbricks.conf \
 && ldconfig
COPY --from=build-gpu /out-gpu/bin/ /usr/local/bin/
RUN ! ldd /usr/local/bin/torchbricks-server /usr/local/bin/torchbricks \
        /usr/local/bin/torchbricks-health-probe | grep "not found"
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001

# The CPU image, the default target (last): the CPU part of the torch wheel (libtorch_cpu, libc10,
# torch's libgomp, and the two small CUDA runtime libraries libtorch_cpu names: libcudart,
# libcupti; none of libtorch_cuda, cuBLAS, cuDNN or NCCL) and the empty libtorch.so that
# AOTInductor packages name, found through ld.so.conf (ld.so.cache): the path that a library
# dlopen'd from /tmp, without a RUNPATH of its own, is searched on too.
FROM runtime AS cpu
COPY --from=build /out/lib/ /usr/local/lib/torchbricks/
RUN echo /usr/local/lib/torchbricks > /etc/ld.so.conf.d/torchbricks.conf && ldconfig
COPY --from=build /out/bin/ /usr/local/bin/
RUN ! ldd /usr/local/bin/torchbricks-server /usr/local/bin/torchbricks \
        /usr/local/bin/torchbricks-health-probe | grep "not found" \
 && ldconfig -p | grep -q "libtorch.so (.*) => /usr/local/lib/torchbricks/libtorch.so$"
USER 10001:10001
