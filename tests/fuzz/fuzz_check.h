// FUZZ_CHECK: the invariant assertion of the fuzz targets in tests/fuzz. A failed check
// prints the condition and aborts, which libFuzzer reports as a crash with its input.
#ifndef TORCHBRICKS_TESTS_FUZZ_FUZZ_CHECK_H_
#define TORCHBRICKS_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

#endif  // TORCHBRICKS_TESTS_FUZZ_FUZZ_CHECK_H_
