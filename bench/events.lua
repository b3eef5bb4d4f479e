-- wrk: POST distribution notification envelopes of 10 manifest pushes each, every push a tag not
-- pushed before (a counter per thread and request), to /api/v1/registry/events.
-- The token comes from the environment: TOKEN=tw_... wrk -s bench/events.lua URL
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/vnd.docker.distribution.events.v1+json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local counter = 0
local threads = 0

-- Each thread its own number (`id`, a global of its Lua state), so no two threads push one tag.
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

request = function()
  counter = counter + 1
  local events = {}
  for k = 1, 10 do
    events[k] = string.format(
      '{"id":"%d-%d-%d","timestamp":"2026-12-02T12:00:00.%09dZ","action":"push","target":' ..
      '{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"shop/load%d","tag":"w%d-%d-%d",' ..
      '"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}',
      id, counter, k, counter % 1000000000, k, id, counter, k)
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  -- wrk.format takes the headers set above (Content-Type, Authorization) when given none.
  return wrk.format(nil, nil, nil, body)
end
