# Turn the file IN into a C header OUT defining ado_embedded_chain (its text) and its name.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
get_filename_component(name ${IN} NAME)
file(WRITE ${OUT} "/* generated from ${name} */\n"
  "static const char ado_embedded_chain_name[] = \"<embedded examples/chains/${name}>\";\n"
  "static const char ado_embedded_chain[] = {${bytes} 0x00};\n")
