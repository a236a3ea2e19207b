# The two commands of the README, plus the usual helpers.
BUILD_DIR ?= build
PRESET ?= default
JOBS ?= $(shell nproc)
CONFIG ?= examples/quickstart.yaml
# What `make run` needs: the server, the agents its local provider starts,
# and the CLI the quick start uses. Only these: building every test first
# took 11 minutes on two cores (about a fifth of that is these three).
RUN_TARGETS := control-plane node-agent navarch
# What the Debian packages hold (docs/packaging.md): the binaries and their
# man pages; not the tests.
PACKAGE_TARGETS := control-plane node-agent navarch simulator navarch_man_pages

.PHONY: run test build build-run package deps configure format check clean

deps:
	@scripts/install-deps

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then cmake --preset $(PRESET) -B $(BUILD_DIR) >/dev/null; fi

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

build-run: configure
	@echo "make run: building the control plane, the agent and the CLI ($(RUN_TARGETS); first time: a few minutes)..."
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target $(RUN_TARGETS)

run: build-run
	@echo "make run: starting the control plane with $(CONFIG) (Ctrl-C stops it and its agents)"
	$(BUILD_DIR)/bin/control-plane --config $(CONFIG)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

# navarch-node-agent and navarch .deb files in $(BUILD_DIR)/packages/.
package: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target $(PACKAGE_TARGETS)
	@cd $(BUILD_DIR) && cpack -B packages
	@ls -1 $(BUILD_DIR)/packages/*.deb

format:
	@find src apps tests -name '*.h' -o -name '*.cc' | xargs clang-format -i

# What CI runs (.ci/run): every step, or some: make check STEPS="format fuzz".
check: deps
	@JOBS=$(JOBS) scripts/check $(STEPS)

clean:
	rm -rf $(BUILD_DIR)
