# `simulator run` without --output writes under ./sim-runs/, and .gitignore
# keeps that folder out of git, so a run in the checkout leaves it clean.
set(dir ${WORK}/sim-default-output)
file(REMOVE_RECURSE ${dir})
file(MAKE_DIRECTORY ${dir})
execute_process(COMMAND ${SIM} run ${SCENARIO}
                WORKING_DIRECTORY ${dir}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run exited ${rc}:\n${out}")
endif()
file(GLOB reports ${dir}/sim-runs/*/report.json)
list(LENGTH reports n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one sim-runs/<timestamp>/report.json in ${dir}, found ${n}:\n${out}")
endif()
file(STRINGS ${SOURCE}/.gitignore ignored)
list(FIND ignored "/sim-runs/" at)
if(at EQUAL -1)
  message(FATAL_ERROR ".gitignore does not list /sim-runs/ (the default --output)")
endif()
message("default output ${reports}, ignored by git")
