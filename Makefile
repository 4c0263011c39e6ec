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

.PHONY: all build deps test run clean fuzz

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

# Fuzzing with libFuzzer (Debian's clang), ASan and UBSan: builds each
# target into build-fuzz/ and runs it for FUZZ_SECONDS on a copy of its
# corpus (fuzz/corpus/NAME; new inputs land in build-fuzz/corpus/NAME).
FUZZ_SECONDS ?= 60
FUZZ_DIR ?= build-fuzz
FUZZ_CXX ?= clang++
FUZZ_FLAGS := -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Isrc
FUZZ_CORE := src/core/status.cc src/core/log.cc
FUZZ_TOKENIZER := $(wildcard src/tokenizer/*.cc) $(wildcard src/gguf/*.cc) src/core/dtype.cc $(FUZZ_CORE)
FUZZ_request_parser_SRC := src/server/json_body.cc src/server/openai_types.cc \
	src/server/api_error.cc $(FUZZ_CORE)
FUZZ_tokenizer_SRC := $(FUZZ_TOKENIZER)
FUZZ_gguf_SRC := $(FUZZ_TOKENIZER)
FUZZ_jinja_SRC := $(filter-out src/chat/template_source.cc,$(wildcard src/chat/*.cc)) $(FUZZ_CORE)
FUZZ_json_schema_SRC := $(wildcard src/grammar/*.cc) src/server/json_body.cc $(FUZZ_TOKENIZER)
FUZZ_LIBS := -lpcre2-8
FUZZ_TARGETS := request_parser tokenizer jinja gguf json_schema

# A target rebuilds when its harness, any source it compiles or any header
# changes (it once depended on the harness alone: a fixed bug kept being
# fuzzed in the old binary).
FUZZ_HEADERS := $(wildcard src/*/*.h src/*/*/*.h)
.SECONDEXPANSION:
$(FUZZ_DIR)/%_fuzz: fuzz/%_fuzz.cc $$(FUZZ_$$*_SRC) $$(FUZZ_HEADERS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CXX) $(FUZZ_FLAGS) $< $(FUZZ_$*_SRC) $(FUZZ_LIBS) -o $@

fuzz: $(foreach t,$(FUZZ_TARGETS),$(FUZZ_DIR)/$(t)_fuzz)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; cp -n fuzz/corpus/$$t/* $(FUZZ_DIR)/corpus/$$t/; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus/$$t || exit 1; \
	done

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR)
