/* fuzz_yaml.c: rt.yaml.load (libyaml events -> Lua tables with line marks)
 * and rt.yaml.mark on what it builds. Bad YAML must come back as nil plus
 * a message that names the input; raising is a bug. */
#define FUZZ_LUA                                                                   \
  "local yaml = require('rt.yaml')\n"                                              \
  "local function walk(t, depth)\n"                                                \
  "  if type(t) ~= 'table' or depth > 40 then return end\n"                        \
  "  for k, v in pairs(t) do\n"                                                    \
  "    yaml.mark(t, k)\n"                                                          \
  "    walk(v, depth + 1)\n"                                                       \
  "  end\n"                                                                        \
  "end\n"                                                                          \
  "return function(data)\n"                                                        \
  "  local doc, err = yaml.load(data, 'fuzz.md', { line_offset = 1 })\n"           \
  "  if doc == nil then\n"                                                         \
  "    assert(type(err) == 'string' and err:find('fuzz.md', 1, true), err)\n"      \
  "    return\n"                                                                   \
  "  end\n"                                                                        \
  "  walk(doc, 0)\n"                                                               \
  "end\n"
#include "harness.h"
