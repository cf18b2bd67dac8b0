# Helpers that declare the project's own targets with its warning policy.

function(torchbricks_warnings target)
  # Designated initializers that leave fields at their defaults are idiomatic here.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-missing-field-initializers)
  # clang checks the lock annotations (ABSL_GUARDED_BY and friends); gcc ignores them.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(TORCHBRICKS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# torchbricks_library(NAME SRCS ... DEPS ... [PRIVATE_DEPS ...])
# DEPS are part of the library's interface (their headers appear in its headers);
# PRIVATE_DEPS are used only by its sources: their include paths do not reach dependants,
# so a layer can hide libtorch behind a torch-free header.
function(torchbricks_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  if(ARG_PRIVATE_DEPS)
    target_link_libraries(${name} PRIVATE ${ARG_PRIVATE_DEPS})
  endif()
  torchbricks_warnings(${name})
endfunction()

# torchbricks_test(NAME SRCS ... DEPS ... [FIXTURES fixture...])
# A GoogleTest binary whose cases are registered with ctest one by one.
function(torchbricks_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;FIXTURES" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  torchbricks_warnings(${name})
  # Where tests find the fixture packages and the server binary (environment overrides).
  target_compile_definitions(${name} PRIVATE
    TORCHBRICKS_DEFAULT_FIXTURES="${PROJECT_BINARY_DIR}/fixtures"
    TORCHBRICKS_DEFAULT_SERVER="${PROJECT_BINARY_DIR}/server/torchbricks-server")
  set(properties TIMEOUT 600)
  if(ARG_FIXTURES)
    list(APPEND properties FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
  # One ctest entry per GoogleTest case, listed when ctest runs.
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES ${properties})
endfunction()
