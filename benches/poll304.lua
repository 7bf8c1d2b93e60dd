-- wrk script: an Unleash server SDK's poll of /api/client/features that has the current
-- document (If-None-Match with its ETag, from the environment): answered 304.
wrk.headers["Authorization"] = os.getenv("CLIENT_TOKEN")
wrk.headers["If-None-Match"] = os.getenv("ETAG")
