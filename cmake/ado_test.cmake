# ado_add_test(NAME sources...): a Criterion test executable registered with CTest.
# Defined before core/, lib/ and plugins/ are added so that every folder can register tests.
set(ADO_TEST_ENV
  "ADO_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "ADO_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "ADO_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

function(ado_add_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE adocore PkgConfig::CRITERION)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/support)
  target_compile_definitions(${name} PRIVATE
    ADO_BUILD_DIR="${CMAKE_BINARY_DIR}" ADO_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_test(NAME ${name} COMMAND ${name} --jobs 1)
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${ADO_TEST_ENV}" TIMEOUT 300)
endfunction()
