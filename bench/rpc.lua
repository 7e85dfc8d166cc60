-- wrk script for the sidecar's /rpc (SPEC 3.2): POSTs one JSON call to go.micro.srv.bench.
wrk.method = "POST"
wrk.body = '{"service":"go.micro.srv.bench","method":"Bench.Call","request":{}}'
wrk.headers["Content-Type"] = "application/json"
