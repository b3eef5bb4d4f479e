-- wrk script: one push check of an immutable tag per request. By default it overwrites the tag: a denial,
-- which is also queued for the audit trail. CURRENT=<the pushed digest> makes it a re-push of the same image:
-- allowed, the common case, through the same rule matching.
-- The token comes from the environment: TOKEN=tw_... wrk -s bench/check.lua URL
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"operation":"push","repository":"' .. (os.getenv("REPOSITORY") or "p0/api/web") .. '","tag":"' .. (os.getenv("TAG") or "v1.2.3") .. '",'
  .. '"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",'
  .. '"current_digest":"' .. (os.getenv("CURRENT") or "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") .. '"}'
