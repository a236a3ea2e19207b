# Runs SCENARIO twice with the same seed; the reports' summaries must be
# identical, byte for byte.
foreach(run a b)
  execute_process(COMMAND ${SIM} run ${SCENARIO} --seed 4242
                          --output ${OUT}/${run}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${run} exited ${rc}")
  endif()
  file(READ ${OUT}/${run}/report.json json_${run})
  string(JSON summary_${run} GET "${json_${run}}" summary)
endforeach()
if(NOT summary_a STREQUAL summary_b)
  message(FATAL_ERROR "summaries differ:\n${summary_a}\n---\n${summary_b}")
endif()
string(LENGTH "${summary_a}" n)
message("identical summaries (${n} bytes)")
