#!/usr/bin/env bash
# Fills .gpu/ (git-ignored) with what scripts/gpu_check.sh needs on the GPU
# machine, which has nvcc, CMake, ninja, gcc and Python but no apt and no
# network. Run it here, on the Debian 12 development machine, then call the
# device tool with carry [".gpu"]:
#   .gpu/debs/      Debian .debs of the build dependencies (gpu_check.sh
#                   unpacks them with dpkg -x into a private prefix)
#   .gpu/fixtures/  reference/, stories260K/ and the llama-spm vocab from
#                   ../shared/fixtures (the GPU tests read them)
#   .gpu/llama.cpp/ llama.cpp's source from node-llama-cpp@3.21.1 (the peer,
#                   built there with CUDA), pruned to what its build needs
# Idempotent; prints the size that will travel (the device tool's limit is
# 64 MiB for the whole working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p .gpu/debs .gpu/fixtures/vocab

# 1. Build dependencies as .debs (the same packages the Makefile installs).
pkgs="libgtest-dev googletest libgmock-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
      libcpp-httplib0.11 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
      libssl-dev libssl3 libbrotli-dev libbrotli1 zlib1g-dev pkgconf pkgconf-bin libpkgconf3
      libxxhash-dev libxxhash0"
missing=""
for p in $pkgs; do ls .gpu/debs/${p}_*.deb > /dev/null 2>&1 || missing="$missing $p"; done
[ -n "$missing" ] && (cd .gpu/debs && apt-get download $missing)

# 2. Fixtures.
shared=$root/../shared/fixtures
rm -rf .gpu/fixtures/reference .gpu/fixtures/stories260K
cp -r "$shared/reference" .gpu/fixtures/reference
cp -r "$shared/stories260K" .gpu/fixtures/stories260K
cp -u "$shared/vocab/ggml-vocab-llama-spm.gguf" .gpu/fixtures/vocab/

# 3. The peer's source: node-llama-cpp@3.21.1 bundles llama.cpp as a git bundle.
if [ ! -f .gpu/llama.cpp/.pruned-server ]; then
  (cd bench/peer && { [ -d node_modules/node-llama-cpp ] ||
     NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --no-audit --no-fund --ignore-scripts; })
  bundle=bench/peer/node_modules/node-llama-cpp/llama/gitRelease.bundle
  rm -rf .gpu/llama.cpp
  git clone -q "$bundle" .gpu/llama.cpp
  # Keep what the CUDA build of llama-bench and llama-server needs (the
  # tools list is cut down to them; the server is built without its web UI:
  # -DLLAMA_USE_PREBUILT_UI=OFF, no npm, no download).
  (cd .gpu/llama.cpp && mv scripts/ui-assets.cmake ui-assets.cmake.keep && \
   rm -rf .git .github docs examples benches conversion pocs skills \
     media gguf-py scripts models/templates models/*.gguf* tests \
     ggml/src/ggml-vulkan ggml/src/ggml-sycl ggml/src/ggml-cann ggml/src/ggml-opencl \
     ggml/src/ggml-metal ggml/src/ggml-musa ggml/src/ggml-kompute ggml/src/ggml-hip \
     ggml/src/ggml-webgpu ggml/src/ggml-zdnn ggml/src/ggml-et ggml/src/ggml-hexagon \
     ggml/src/ggml-openvino ggml/src/ggml-virtgpu ./*.py
   mkdir scripts && mv ui-assets.cmake.keep scripts/ui-assets.cmake
   find tools -mindepth 1 -maxdepth 1 ! -name llama-bench ! -name server ! -name mtmd ! -name ui \
     ! -name CMakeLists.txt -exec rm -rf {} +
   find tools/ui -mindepth 1 -maxdepth 1 ! -name CMakeLists.txt ! -name embed.cpp -exec rm -rf {} +
   printf '%s\n' 'find_package(Threads REQUIRED)' 'llama_add_compile_flags()' \
     'add_subdirectory(llama-bench)' 'add_subdirectory(mtmd)' 'add_subdirectory(ui)' \
     'add_subdirectory(server)' > tools/CMakeLists.txt
   touch .pruned-server)
fi

du -sh .gpu .gpu/*
echo "total that travels (tree + .gpu):"
du -sh --exclude=build --exclude='build-*' --exclude=node_modules --exclude=.git --exclude=models .
