// A plain HTTP app (no JSON-RPC) for --handler=proxy: the sidecar forwards /<name>/... to it
// unchanged. Usage: node webapp.js [PORT] (default 9092).
const http = require("http");

const port = Number(process.argv[2] || 9092);
http.createServer((req, res) => {
  const body = JSON.stringify({ path: req.url, forwardedFor: req.headers["x-forwarded-for"] });
  res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}).listen(port, "127.0.0.1");
