# Runs SIM with ARGS ('|'-separated) and checks that it exits with EXPECT.
string(REPLACE "|" ";" _args "${ARGS}")
execute_process(COMMAND ${SIM} ${_args} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL ${EXPECT})
  message(FATAL_ERROR "expected exit ${EXPECT}, got ${rc}")
endif()
