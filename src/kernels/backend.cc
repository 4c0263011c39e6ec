// Backend selection: --device auto|cpu|cuda, and whether CUDA is usable here.
#include "kernels/backend.h"

#include <algorithm>
#include <cstdlib>

namespace reprise::kernels {

#ifdef REPRISE_HAVE_CUDA
// cuda/cuda_backend.cu
int CudaDeviceCountImpl(std::string* why_none);
Result<std::unique_ptr<Backend>> CreateCudaBackend(int device);
#endif

Result<void*> Backend::AllocHost(size_t bytes, const char* what) {
  void* p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  if (p == nullptr) return Errorf("cannot allocate %zu bytes of host memory for %s", bytes, what);
  return p;
}

void Backend::FreeHost(void* p) { std::free(p); }

HostFloats::HostFloats(Backend* be, size_t n, const char* what) {
  if (be != nullptr) {
    auto p = be->AllocHost(n * sizeof(float), what);
    if (p.ok()) {
      be_ = be;
      p_ = static_cast<float*>(*p);
      return;
    }
  }
  plain_ = std::make_unique<float[]>(std::max<size_t>(n, 1));
  p_ = plain_.get();
}

HostFloats::~HostFloats() {
  if (be_ != nullptr) be_->FreeHost(p_);
}

const char* DeviceTypeName(DeviceType type) {
  return type == DeviceType::kCuda ? "cuda" : "cpu";
}

Result<DevicePreference> ParseDevicePreference(const std::string& text) {
  if (text == "auto") return DevicePreference::kAuto;
  if (text == "cpu") return DevicePreference::kCpu;
  if (text == "cuda" || text == "gpu") return DevicePreference::kCuda;
  return Errorf("invalid device '%s' (use auto, cpu or cuda)", text.c_str());
}

int CudaDeviceCount(std::string* why_none) {
#ifdef REPRISE_HAVE_CUDA
  return CudaDeviceCountImpl(why_none);
#else
  if (why_none != nullptr) {
    *why_none = "this build has no CUDA support (configure with -DREPRISE_CUDA=ON where nvcc is "
                "installed)";
  }
  return 0;
#endif
}

Result<std::unique_ptr<Backend>> CreateBackend(DevicePreference pref, int n_threads) {
  if (pref == DevicePreference::kCpu) return CreateCpuBackend(n_threads);
  std::string why;
  const int gpus = CudaDeviceCount(&why);
  if (gpus == 0) {
    if (pref == DevicePreference::kAuto) return CreateCpuBackend(n_threads);
    return Errorf("--device cuda: no usable GPU: %s", why.c_str());
  }
#ifdef REPRISE_HAVE_CUDA
  return CreateCudaBackend(0);
#else
  return Errorf("--device cuda: %s", why.c_str());
#endif
}

}  // namespace reprise::kernels
