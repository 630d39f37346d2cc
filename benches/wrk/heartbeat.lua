-- wrk script: heartbeats live Usher sessions, cycling through tokens created
-- beforehand (one per line in the file named by $TOKENS; see make-tokens.sh).
--
--   TOKENS=tokens.txt wrk -t2 -c64 -d20s -s benches/wrk/heartbeat.lua http://127.0.0.1:8080
--
-- Every request is built once at start-up, so the Lua side costs next to nothing
-- per request. Each wrk thread starts at another offset of the list.

local requests = {}
local next_index = 1
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local path = os.getenv("TOKENS") or "tokens.txt"
  for token in io.lines(path) do
    if #token > 0 then
      requests[#requests + 1] = wrk.format("POST", "/v1/sessions/" .. token .. "/heartbeat")
    end
  end
  if #requests == 0 then
    error("no tokens in " .. path)
  end
  next_index = ((id or 0) * 7919) % #requests + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end
