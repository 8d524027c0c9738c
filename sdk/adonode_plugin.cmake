# adonode_add_plugin(NAME src...): build NAME.so, a plugin that exports `ado_plugin`.
# Used in-tree (root CMakeLists.txt) and by plugins built out of tree (find_package(adonode)).
function(adonode_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE adonode::sdk)
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  if(ADO_PLUGIN_OUT)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ADO_PLUGIN_OUT})
    install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/adonode/plugins)
  endif()
endfunction()
