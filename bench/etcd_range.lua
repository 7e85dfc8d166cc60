-- wrk script: the same registry read straight from etcd's v3 JSON gateway, a range over the
-- keys of one service (go-micro layout /micro/registry/bench/<node-id>).
wrk.method = "POST"
-- base64 of "/micro/registry/bench/" and of its range end "/micro/registry/bench0"
wrk.body = '{"key":"L21pY3JvL3JlZ2lzdHJ5L2JlbmNoLw==","range_end":"L21pY3JvL3JlZ2lzdHJ5L2JlbmNoMA=="}'
wrk.headers["Content-Type"] = "application/json"
