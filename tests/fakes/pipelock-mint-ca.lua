-- Mints a CA with bottle's own minting (rt.ca.mint, as a launch does for
-- pipelock) for the shell tests, which must never mint their own keys:
--
--   MINT_DIR=DIR MINT_NAME=NAME [MINT_CN=CN] [MINT_KEY_FORMAT=sec1|pkcs8] \
--     bottle __test-lua tests/fakes/pipelock-mint-ca.lua
--
-- writes DIR/NAME.crt, DIR/NAME.key (0600) and DIR/NAME.pem; the runner's
-- closing line says whether it worked.
local ca = require("rt.ca")

test("mint " .. tostring(os.getenv("MINT_NAME")) .. " with rt.ca.mint", function()
  local format = os.getenv("MINT_KEY_FORMAT")
  assert(ca.mint({
    dir = assert(os.getenv("MINT_DIR"), "MINT_DIR is not set"),
    name = assert(os.getenv("MINT_NAME"), "MINT_NAME is not set"),
    common_name = os.getenv("MINT_CN"),
    key_format = format ~= "" and format or nil,
    overwrite = true,
  }))
end)
