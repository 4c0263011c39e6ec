# The front door. `make run` and `make test` install what is missing (Debian
# packages via apt), build Release into build/, and then serve / test.
# Both are idempotent.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
MODEL ?=
ARGS ?=
DEB_PACKAGES := build-essential cmake ninja-build pkg-config libgtest-dev libgmock-dev \
	libbenchmark-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev \
	libxxhash-dev
# Node.js (for the real-client tests) is installed from Debian only when no
# `node`/`npm` is on the PATH already (it may come from another package).

.PHONY: all build deps test run clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@if [ -f tests/node/package.json ]; then $(MAKE) --no-print-directory node-deps; fi
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

node-deps:
	@cd tests/node && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }

run: build
	@./scripts/run.sh "$(MODEL)" $(ARGS)

clean:
	rm -rf $(BUILD_DIR)
