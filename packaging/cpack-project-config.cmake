# Read by cpack before it builds each package (CPACK_PROJECT_CONFIG_FILE).
# NAVARCH_PACKAGE_COMPONENTS in the environment picks the packages, as CPack
# components separated by commas (agent: navarch-node-agent, navarch:
# navarch); default: both. tests/package_test.sh builds the agent's alone.
if(DEFINED ENV{NAVARCH_PACKAGE_COMPONENTS})
  string(REPLACE "," ";" CPACK_COMPONENTS_ALL "$ENV{NAVARCH_PACKAGE_COMPONENTS}")
endif()
# The source tarball (`package_source`) is rooted at its own folder, not /usr.
if(CPACK_GENERATOR STREQUAL "TGZ")
  set(CPACK_PACKAGING_INSTALL_PREFIX "")
endif()
