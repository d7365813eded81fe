local M = {}
function M.main(args)
  io.stdout:write("bottle ", require("rt.host").version, "\n")
  return 0
end
return M
