-- wrk script: logs users in to one tenant over and over (a records licence, so no
-- seat limit stops it), cycling through $USERS user ids (900 unless set). Set
-- $TENANT and $KEY (the tenant's API key, as returned when it was created).
--
--   TENANT=wrk-login KEY=usk_... wrk -t2 -c64 -d10s -s benches/wrk/login.lua http://127.0.0.1:8080

local requests = {}
local next_index = 1

function init(args)
  local tenant = os.getenv("TENANT") or "wrk-login"
  local key = os.getenv("KEY") or error("set KEY to the tenant's API key")
  local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }
  local users = tonumber(os.getenv("USERS") or "900")
  for u = 0, users - 1 do
    local body = '{"user":"u' .. u .. '","client":"wrk"}'
    requests[#requests + 1] = wrk.format("POST", "/v1/tenants/" .. tenant .. "/sessions", headers, body)
  end
  next_index = math.random(#requests)
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end
