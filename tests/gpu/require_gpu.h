// The GPU tests' skip: where no CUDA device is usable (CI: nvcc but no GPU)
// a test skips with the one-line reason kernels::CudaDeviceCount gives.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "kernels/backend.h"

#define REQUIRE_GPU()                                                                  \
  do {                                                                                 \
    std::string why_;                                                                  \
    if (::reprise::kernels::CudaDeviceCount(&why_) == 0) GTEST_SKIP() << why_;         \
  } while (0)
