// A node `ws` client against the sidecar's broker: subscribes to topic "node" with a JSON
// Content-Type, publishes three text frames and one binary frame, and prints each message
// it gets back (one JSON per line). Exits 0 after four messages, 1 on error or after 10 s.
'use strict';
const WebSocket = require('ws');

const port = process.argv[2];
const ws = new WebSocket(`ws://127.0.0.1:${port}/broker?topic=node`, {
  headers: {'Content-Type': 'application/json'},
});
const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 10000);
let received = 0;
ws.on('open', () => {
  for (let i = 0; i < 3; i++) ws.send('hello from node');
  ws.send(Buffer.from([1, 2, 3]));
});
ws.on('message', (data, isBinary) => {
  if (isBinary) {
    console.error('broker frames must be text');
    process.exit(1);
  }
  console.log(data.toString('utf8'));
  if (++received === 4) ws.close(1000);
});
ws.on('close', (code) => {
  clearTimeout(timer);
  process.exit(received === 4 && code === 1000 ? 0 : 1);
});
ws.on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});
