-- wrk script of bench/ingest.sh: POST the collection in the file named by
-- $BODY_FILE (made by ingest.sh: 10 payloads, about 2.5 KB) to
-- /v1/payloads. Acks are counted from wrk's own summary: every response
-- that is not 2xx (a 503 when the queue is full) is a "Non-2xx" response.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.path = "/v1/payloads"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
