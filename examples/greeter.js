// The same go-micro JSON-RPC service in Node.js, no packages needed.
// Usage: node greeter.js [PORT] (default 9091).
const http = require("http");

const port = Number(process.argv[2] || 9091);
http.createServer((req, res) => {
  if (req.method !== "POST") { // the health check URL
    res.writeHead(200, { "Content-Length": 0 });
    return res.end();
  }
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const call = JSON.parse(body);
    const request = (call.params && call.params[0]) || {};
    let reply;
    if (call.method === "Debug.Health") { // what `micro health SERVICE` asks
      reply = { id: call.id, result: { status: "ok" }, error: null };
    } else if (call.method === "Greeter.Hello") {
      reply = { id: call.id, result: { msg: `Hello ${request.name || "world"} from node` }, error: null };
    } else {
      reply = { id: call.id, result: null, error: `unknown method ${call.method}` };
    }
    const out = JSON.stringify(reply);
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out) });
    res.end(out);
  });
}).listen(port, "127.0.0.1");
