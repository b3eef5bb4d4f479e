-- wrk: POST distribution notification envelopes of 10 manifest pushes each, every push a tag not
-- pushed before (a counter per thread and request), to /api/v1/registry/events.
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))

request = function()
  counter = counter + 1
  local events = {}
  for k = 1, 10 do
    events[k] = string.format(
      '{"id":"%s-%d-%d","timestamp":"2026-12-02T12:00:00.%09dZ","action":"push","target":' ..
      '{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"shop/load%d","tag":"w%s-%d-%d",' ..
      '"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}',
      thread_id, counter, k, counter % 1000000000, k, thread_id, counter, k)
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/vnd.docker.distribution.events.v1+json"}, body)
end
