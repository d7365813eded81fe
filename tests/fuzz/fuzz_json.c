/* fuzz_json.c: bottle.json.decode (lua-cjson, as bottle uses it), the
 * encoder on what it decoded (decode(encode(v)) must succeed), and the
 * state dir metadata reader `bottle ls` and `cleanup` feed from disk. */
#define FUZZ_LUA                                                                   \
  "local json = require('bottle.json')\n"                                          \
  "local inventory = require('bottle.inventory')\n"                                \
  "return function(data)\n"                                                        \
  "  local v, err = json.decode(data)\n"                                           \
  "  if v == nil and err then\n"                                                   \
  "    assert(type(err) == 'string')\n"                                            \
  "  elseif type(v) == 'table' then\n"                                             \
  "    local ok, text = pcall(json.encode, v)\n"                                   \
  "    if ok then assert(json.decode(text) ~= nil, 'encoded output does not decode: ' .. text) end\n" \
  "  end\n"                                                                        \
  "  local meta = inventory.read_meta(data)\n"                                     \
  "  assert(meta == nil or type(meta) == 'table')\n"                               \
  "end\n"
#include "harness.h"
