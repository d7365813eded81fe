/* fuzz_manifest.c: bottle.manifest.parse (frontmatter split, rt.yaml, the
 * schema checks with their file:line messages) for both manifest kinds,
 * then the env classification of whatever validated. A bad manifest must
 * raise one bottle error with a one-line message naming the file. */
#define FUZZ_LUA                                                                   \
  "local manifest = require('bottle.manifest')\n"                                  \
  "local environment = require('bottle.environment')\n"                            \
  "local errors = require('bottle.errors')\n"                                      \
  "local function check(kind, data)\n"                                             \
  "  local ok, m = pcall(manifest.parse, data, kind, 'fuzz', 'fuzz.md')\n"         \
  "  if not ok then\n"                                                             \
  "    if not errors.is(m) then error(m, 0) end\n"                                 \
  "    assert(m.message:find('fuzz.md', 1, true), m.message)\n"                    \
  "    assert(not m.message:find('\\n'), 'message spans lines: ' .. m.message)\n" \
  "    return\n"                                                                   \
  "  end\n"                                                                        \
  "  assert(type(m.meta) == 'table' and type(m.body) == 'string')\n"               \
  "  for name, value in pairs(m.meta.env or {}) do\n"                              \
  "    local okc, e = pcall(environment.classify, name, value)\n"                  \
  "    if not okc and not errors.is(e) then error(e, 0) end\n"                     \
  "  end\n"                                                                        \
  "end\n"                                                                          \
  "return function(data)\n"                                                        \
  "  check('bottle', data)\n"                                                      \
  "  check('agent', data)\n"                                                       \
  "end\n"
#include "harness.h"
