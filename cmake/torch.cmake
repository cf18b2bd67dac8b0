# libtorch from the torch wheel in the project's Python environment (requirements/python.txt),
# as the INTERFACE target `torchbricks_torch`. Nothing here needs a CUDA toolkit.
#
# The wheel's own TorchConfig.cmake is not used: with libtorch_cuda present it insists on a CUDA
# toolkit (nvcc, CUDA::toolkit) at configure time. Instead:
#   - TORCHBRICKS_PYTHON (the venv's python) says where torch is and which libstdc++ ABI it uses;
#   - torch's headers come from a folder of links made here, `<build>/torch_include`, holding every
#     entry of torch/include except `google/`: the wheel bundles protobuf 3.13 headers there, and
#     our generated *.pb.h and gRPC need Debian's protobuf 3.21 ones in /usr/include. The folder
#     is an -isystem directory, so it is searched before /usr/include: torch's own headers win
#     over any Debian libtorch-dev copy of ATen/c10/torch/caffe2, and <google/protobuf/...> still
#     resolves to /usr/include (core/execution/protobuf_headers_check.cc fails the build otherwise);
#   - libtorch, libtorch_cpu and libc10 are linked by full path, and libtorch_cuda and libc10_cuda,
#     when the wheel has them, with --no-as-needed: nothing we compile references them, but
#     loading them registers CUDA with libtorch, so the same binary uses a GPU where one exists;
#   - torch/lib is put in the RUNPATH, and libgomp.so.1 from torch/lib is linked first, so the
#     process loads torch's OpenMP runtime and every later request for libgomp.so.1 (Debian's
#     OpenBLAS under OpenCV, -fopenmp code) resolves to that same copy (tests/openmp_runtime_test).
#
# Sets TORCHBRICKS_TORCH_DIR, TORCHBRICKS_TORCH_VERSION, TORCHBRICKS_TORCH_HAS_CUDA and
# TORCHBRICKS_TORCH_OPENMP_RUNTIME (torch's libgomp.so.1, empty when the wheel has none).

set(TORCHBRICKS_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "The project's Python (made by scripts/setup.sh): torch for the fixtures, and the libtorch linked")
if(TORCHBRICKS_PYTHON STREQUAL "/usr/bin/python3")
  # The default before torch 2 (Debian's python3-torch 1.13), still in older build folders' caches.
  set(TORCHBRICKS_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
      "The project's Python (made by scripts/setup.sh): torch for the fixtures, and the libtorch linked" FORCE)
endif()
if(NOT EXISTS "${TORCHBRICKS_PYTHON}")
  message(FATAL_ERROR "No Python at ${TORCHBRICKS_PYTHON}: run scripts/setup.sh first (it makes .venv), "
                      "or pass -DTORCHBRICKS_PYTHON=<python with torch>")
endif()

execute_process(
  COMMAND "${TORCHBRICKS_PYTHON}" -c
    "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__)"
  OUTPUT_VARIABLE _torch_answer
  ERROR_VARIABLE _torch_error
  RESULT_VARIABLE _torch_result
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_result EQUAL 0)
  message(FATAL_ERROR "${TORCHBRICKS_PYTHON} cannot import torch (run scripts/setup.sh):\n${_torch_error}")
endif()
string(REPLACE "\n" ";" _torch_answer "${_torch_answer}")
list(GET _torch_answer 0 TORCHBRICKS_TORCH_DIR)
list(GET _torch_answer 1 _torch_cxx11_abi)
list(GET _torch_answer 2 TORCHBRICKS_TORCH_VERSION)
set(_torch_lib "${TORCHBRICKS_TORCH_DIR}/lib")

# torch/include without google/ (see above), rebuilt on every configure.
set(_torch_include "${PROJECT_BINARY_DIR}/torch_include")
file(REMOVE_RECURSE "${_torch_include}")
file(MAKE_DIRECTORY "${_torch_include}")
file(GLOB _torch_include_entries RELATIVE "${TORCHBRICKS_TORCH_DIR}/include" "${TORCHBRICKS_TORCH_DIR}/include/*")
foreach(_entry IN LISTS _torch_include_entries)
  if(NOT _entry STREQUAL "google")
    file(CREATE_LINK "${TORCHBRICKS_TORCH_DIR}/include/${_entry}" "${_torch_include}/${_entry}" SYMBOLIC)
  endif()
endforeach()

foreach(_name torch torch_cpu c10)
  if(NOT EXISTS "${_torch_lib}/lib${_name}.so")
    message(FATAL_ERROR "${_torch_lib}/lib${_name}.so is missing: is ${TORCHBRICKS_TORCH_DIR} a torch wheel?")
  endif()
endforeach()
set(TORCHBRICKS_TORCH_HAS_CUDA OFF)
if(EXISTS "${_torch_lib}/libtorch_cuda.so" AND EXISTS "${_torch_lib}/libc10_cuda.so")
  set(TORCHBRICKS_TORCH_HAS_CUDA ON)
endif()

add_library(torchbricks_torch INTERFACE)
target_include_directories(torchbricks_torch SYSTEM INTERFACE
  "${_torch_include}" "${TORCHBRICKS_TORCH_DIR}/include/torch/csrc/api/include")
target_compile_definitions(torchbricks_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_torch_cxx11_abi})
target_compile_features(torchbricks_torch INTERFACE cxx_std_17)
# --no-as-needed: libgomp must be a direct dependency of every binary (loaded first, see above)
# and libtorch_cuda/libc10_cuda are loaded although nothing we compile references them.
# libstdc++ comes before libtorch: the wheel is built with a newer GCC whose static part of
# libstdc++ (std::filesystem, std::chrono::tzdb, string streams, ...) libtorch.so exports; a
# binary whose own std:: calls bound to those copies crashed (std::filesystem::remove_all
# jumping to 0). With libstdc++.so.6 earlier in the load order, our code binds to Debian's.
set(_torch_link "-Wl,--push-state,--no-as-needed" "-lstdc++")
set(TORCHBRICKS_TORCH_OPENMP_RUNTIME "")
if(EXISTS "${_torch_lib}/libgomp.so.1")
  set(TORCHBRICKS_TORCH_OPENMP_RUNTIME "${_torch_lib}/libgomp.so.1")
  list(APPEND _torch_link "${_torch_lib}/libgomp.so.1")
endif()
# TORCHBRICKS_LINK_CUDA=OFF (the CPU image): only libtorch_cpu and libc10, not libtorch.so,
# which needs libtorch_cuda, so the binaries need none of the wheel's CUDA libraries but the
# two small runtime ones libtorch_cpu itself names (libcudart, libcupti).
# libtorch.so is linked whenever it can be (--no-as-needed: nothing we compile references it):
# the code inside an AOTInductor package (.pt2, core/execution/aoti_brick.h) names libtorch.so
# as a dependency and has no RUNPATH, so dlopen finds it only when the process already holds it
# or it is on the dynamic loader's own path (LD_LIBRARY_PATH, ld.so.cache; not our RUNPATH).
# A CPU-only wheel's libtorch.so needs no CUDA and is linked in the CPU build too; with a CUDA
# wheel and TORCHBRICKS_LINK_CUDA=OFF it is not, and AOTInductor bricks load only where a
# libtorch.so is on that path (the CPU image carries an empty one: the package's code takes no
# symbol from it; Dockerfile), else fail (FailedPrecondition naming libtorch.so).
option(TORCHBRICKS_LINK_CUDA "Link libtorch_cuda when the wheel has it (GPU instances)" ON)
if(TORCHBRICKS_TORCH_HAS_CUDA AND TORCHBRICKS_LINK_CUDA)
  list(APPEND _torch_link "${_torch_lib}/libtorch.so" "${_torch_lib}/libtorch_cpu.so" "${_torch_lib}/libc10.so"
       "${_torch_lib}/libtorch_cuda.so" "${_torch_lib}/libc10_cuda.so")
elseif(NOT TORCHBRICKS_TORCH_HAS_CUDA)
  list(APPEND _torch_link "${_torch_lib}/libtorch.so" "${_torch_lib}/libtorch_cpu.so" "${_torch_lib}/libc10.so")
else()
  set(TORCHBRICKS_TORCH_HAS_CUDA OFF)
  list(APPEND _torch_link "${_torch_lib}/libtorch_cpu.so" "${_torch_lib}/libc10.so")
  message(STATUS "TORCHBRICKS_LINK_CUDA=OFF with a CUDA wheel: libtorch.so is not linked, "
                 "AOTInductor (.pt2) bricks load only where one is on the loader's path")
endif()
list(APPEND _torch_link "-Wl,--pop-state")
target_link_libraries(torchbricks_torch INTERFACE ${_torch_link})
# torch/lib at run time (libtorch_cuda finds the CUDA libraries of the nvidia wheels through its
# own $ORIGIN rpath); at link time the linker needs the same to check libtorch's own dependencies.
target_link_options(torchbricks_torch INTERFACE "LINKER:-rpath,${_torch_lib}" "LINKER:-rpath-link,${_torch_lib}")

message(STATUS "libtorch ${TORCHBRICKS_TORCH_VERSION} from ${TORCHBRICKS_TORCH_DIR} "
               "(C++11 ABI ${_torch_cxx11_abi}, CUDA ${TORCHBRICKS_TORCH_HAS_CUDA})")
