# Helpers that keep every component's CMakeLists.txt short and uniform.
include_guard(GLOBAL)

# navarch_cc_library(NAME name SRCS ... DEPS ...)
# Defines navarch_<name> with the alias navarch::<name>. Headers are included as
# "navarch/<component>/<file>.h" from the src/ folder.
function(navarch_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  set(target navarch_${ARG_NAME})
  if(ARG_SRCS)
    add_library(${target} STATIC ${ARG_SRCS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
  endif()
  add_library(navarch::${ARG_NAME} ALIAS ${target})
endfunction()

# navarch_cc_test(NAME name SRCS ... DEPS ... [LABELS ...])
# One GoogleTest binary, registered with CTest test by test.
function(navarch_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  # ASan and UBSan make code 2-3x slower; the limits are for hangs, not speed.
  if(NAVARCH_SANITIZE)
    math(EXPR ARG_TIMEOUT "${ARG_TIMEOUT} * 3")
  endif()
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
endfunction()

# navarch_cc_binary(NAME name SRCS ... DEPS ...): a shipped program in <build>/bin.
function(navarch_cc_binary)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
endfunction()

# navarch_fuzzer(NAME name SRCS ... DEPS ... CORPUS dir [MAX_LEN n])
# A libFuzzer target in <build>/fuzz (NAVARCH_FUZZ builds only), and a CTest
# test, label `fuzz`, that runs it once over every input of its committed
# seed corpus: the corpus is a regression suite even where no fuzzing runs.
# scripts/run-fuzzers fuzzes each for a bounded time on a copy of its corpus.
function(navarch_fuzzer)
  cmake_parse_arguments(ARG "" "NAME;CORPUS;MAX_LEN" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  target_compile_options(${ARG_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_options(${ARG_NAME} PRIVATE -fsanitize=fuzzer)
  set_target_properties(${ARG_NAME} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
  if(NOT ARG_MAX_LEN)
    set(ARG_MAX_LEN 4096)
  endif()
  # Read by scripts/run-fuzzers: one line per fuzzer, "name corpus max_len".
  set_property(GLOBAL APPEND PROPERTY NAVARCH_FUZZERS
    "${ARG_NAME} ${ARG_CORPUS} ${ARG_MAX_LEN}")
  # In <build>/fuzz, so that a crash's reproducer lands there, not in src/.
  add_test(NAME ${ARG_NAME}_corpus
    COMMAND ${ARG_NAME} -runs=0 -max_len=${ARG_MAX_LEN} ${ARG_CORPUS}
    WORKING_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
  set_tests_properties(${ARG_NAME}_corpus PROPERTIES TIMEOUT 120 LABELS fuzz)
endfunction()

# Writes <build>/fuzz/fuzzers.txt, the list scripts/run-fuzzers reads; call
# once after every navarch_fuzzer().
function(navarch_write_fuzzer_list)
  get_property(fuzzers GLOBAL PROPERTY NAVARCH_FUZZERS)
  list(JOIN fuzzers "\n" text)
  file(WRITE ${PROJECT_BINARY_DIR}/fuzz/fuzzers.txt "${text}\n")
endfunction()
