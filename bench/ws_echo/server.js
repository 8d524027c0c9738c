// Anchor for bench_rpc: echo every WebSocket message back. usage: node server.js PORT
'use strict';
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2] || 9001);
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
wss.on('listening', () => console.log('ws echo listening on ' + port));
