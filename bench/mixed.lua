-- wrk: mixed traffic for the soak: session checks, application lookups, permission checks.
local paths = {"/Account/status", "/Service/getApplication?name=Passport",
               "/Permission/check?application=Passport&permission=admin", "/Account/status"}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
dofile(os.getenv("BENCH_STATS"))
