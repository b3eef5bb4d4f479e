-- wrk script: one overwrite of an immutable tag (a denial: the engine's full path) per request.
-- The token comes from the environment: TOKEN=tw_... wrk -s bench/check.lua URL
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"operation":"push","repository":"' .. (os.getenv("REPOSITORY") or "p0/api/web") .. '","tag":"v1.2.3",'
  .. '"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",'
  .. '"current_digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}'
