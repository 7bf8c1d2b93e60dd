-- POSTs one evaluation context to a bulk route (the path given to wrk), a different user each time.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"context":{"targetingKey":"user-%d","email":"u%d@example.com","plan":"pro","beta":"true"}}', counter, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
