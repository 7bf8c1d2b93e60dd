-- wrk script: GET an Unleash frontend API path (wrk's URL path) for a new user per request.
-- FRONTEND_TOKEN is sent raw in Authorization, as Unleash's SDKs send it.
wrk.headers["Authorization"] = os.getenv("FRONTEND_TOKEN")
local path = nil
local n = 0
request = function()
  path = path or wrk.path
  n = n + 1
  return wrk.format("GET", string.format("%s?userId=user-%d&properties%%5Bemail%%5D=u%d%%40example.com&properties%%5Bplan%%5D=pro&properties%%5Bbeta%%5D=true", path, n, n))
end
