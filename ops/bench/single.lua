-- wrk script: one event per POST, a new session every 16 requests, per thread.
local counter = 0
local thread_id = 0
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  counter = 0
end
function request()
  counter = counter + 1
  local sid = "bench-" .. tid .. "-" .. math.floor(counter / 16)
  local body = '{"session_id":"' .. sid .. '","key":"page_view","value":{"path":"/products/12345","ref":"https://example.com/search?q=shoes"},"via":"newsletter","component":"web","user_id":"user-' .. (counter % 1000) .. '","attrs":{"ua":"Mozilla/5.0 (X11; Linux x86_64)","lang":"en"}}'
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end
