-- wrk script for the JSON-RPC backend called directly: the body the sidecar sends it (SPEC 4),
-- so "direct" is the floor the /rpc numbers are compared with.
wrk.method = "POST"
wrk.body = '{"method":"Bench.Call","params":[{}],"id":1}\n'
wrk.headers["Content-Type"] = "application/json"
