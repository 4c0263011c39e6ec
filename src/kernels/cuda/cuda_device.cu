// The CUDA runtime's small services shared by every kernel file and the
// backend: the fast-path environment switches (EnvSwitchOn, EnvIsOne; the
// PathSwitch rules), whether programmatic dependent launch is on (PdlOn:
// sm_90 and REPRISE_CUDA_PDL not 0), CUDA errors as Status (CudaStatus), and
// the visible device count with the reason when there is none
// (CudaDeviceCountImpl, backend.cc's CudaDeviceCount).
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/path_switch.h"

namespace reprise::kernels {

int CudaDeviceCountImpl(std::string* why_none);

namespace cuda {

bool EnvSwitchOn(const char* name) { return PathEnvOn(name, PathDefault::kOn); }

bool EnvIsOne(const char* name) { return PathEnvOn(name, PathDefault::kOff); }

bool PdlOn() {
  static const bool on = [] {
    if (!EnvSwitchOn("REPRISE_CUDA_PDL")) return false;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  return on;
}

Status CudaStatus(cudaError_t err, const char* what) {
  return Errorf("CUDA error in %s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

}  // namespace cuda

int CudaDeviceCountImpl(std::string* why_none) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (why_none != nullptr) {
      int runtime = 0;
      cudaRuntimeGetVersion(&runtime);
      char rt[32];
      std::snprintf(rt, sizeof(rt), "%d.%d", runtime / 1000, (runtime % 1000) / 10);
      *why_none = err == cudaErrorInsufficientDriver
                      ? std::string("no NVIDIA driver is loaded, or it is older than this build's "
                                    "CUDA runtime ") + rt
                  : err == cudaErrorNoDevice
                      ? std::string("no CUDA-capable GPU is visible")
                      : std::string("CUDA is unusable here: ") + cudaGetErrorString(err);
    }
    return 0;
  }
  if (count == 0 && why_none != nullptr) *why_none = "no CUDA device is visible";
  return count;
}

}  // namespace reprise::kernels
