-- wrk script: POST /evaluate with a varying targeting key and flag (1,000 flags).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("CLIENT_TOKEN") then
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("CLIENT_TOKEN") -- servers with tokens set
end
local n = 0
request = function()
  n = n + 1
  local flag = string.format("flag_%04d", n % 1000)
  local body = string.format('{"flag":"%s","context":{"targetingKey":"user-%d","email":"u%d@example.com","plan":"pro","beta":"true"}}', flag, n, n)
  return wrk.format(nil, nil, nil, body)
end
