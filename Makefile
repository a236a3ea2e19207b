# The two commands of the README, plus the usual helpers.
BUILD_DIR ?= build
PRESET ?= default
JOBS ?= $(shell nproc)
CONFIG ?= examples/quickstart.yaml

.PHONY: run test build deps configure format check clean

deps:
	@scripts/install-deps

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then cmake --preset $(PRESET) -B $(BUILD_DIR) >/dev/null; fi

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	$(BUILD_DIR)/bin/control-plane --config $(CONFIG)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

format:
	@find src apps tests -name '*.h' -o -name '*.cc' | xargs clang-format -i

# What CI runs (.ci/run): every step, or some: make check STEPS="format fuzz".
check: deps
	@JOBS=$(JOBS) scripts/check $(STEPS)

clean:
	rm -rf $(BUILD_DIR)
