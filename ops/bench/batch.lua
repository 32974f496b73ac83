-- wrk script: a JSON array of BATCH events per POST (default 100).
local counter = 0
local thread_id = 0
local batch = tonumber(os.getenv("BATCH") or "100")
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, batch do
    local sid = "bench-" .. tid .. "-" .. ((counter * batch + i) % 5000)
    parts[i] = '{"session_id":"' .. sid .. '","key":"page_view","value":{"path":"/products/' .. i .. '","ref":"https://example.com/search?q=shoes"},"via":"newsletter","component":"web","attrs":{"lang":"en"}}'
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, "[" .. table.concat(parts, ",") .. "]")
end
