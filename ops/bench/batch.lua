-- wrk script: a JSON array of BATCH events per POST (default 100). The bodies are built once
-- per thread (BODIES of them, default 200, cycled), so the load tool spends its CPU sending,
-- not concatenating strings; sessions differ across bodies and threads.
local thread_id = 0
local batch = tonumber(os.getenv("BATCH") or "100")
local nbodies = tonumber(os.getenv("BODIES") or "200")
local bodies = {}
local counter = 0
local headers = {["Content-Type"] = "application/json"}
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  for b = 1, nbodies do
    local parts = {}
    for i = 1, batch do
      local sid = "bench-" .. tid .. "-" .. ((b * batch + i) % 5000)
      parts[i] = '{"session_id":"' .. sid .. '","key":"page_view","value":{"path":"/products/' .. i .. '","ref":"https://example.com/search?q=shoes"},"via":"newsletter","component":"web","attrs":{"lang":"en"}}'
    end
    bodies[b] = wrk.format("POST", "/v1/events", headers, "[" .. table.concat(parts, ",") .. "]")
  end
end
function request()
  counter = counter + 1
  return bodies[(counter % nbodies) + 1]
end
