-- wrk script: one push check per request. TAG=v1.2.3 (default) overwrites an immutable tag: a denial, which
-- is also queued for the audit trail; TAG=latest is a mutable tag: allowed, the common case.
-- The token comes from the environment: TOKEN=tw_... wrk -s bench/check.lua URL
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"operation":"push","repository":"' .. (os.getenv("REPOSITORY") or "p0/api/web") .. '","tag":"' .. (os.getenv("TAG") or "v1.2.3") .. '",'
  .. '"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",'
  .. '"current_digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}'
