// Drives adonode's /ws with the npm `ws` client: a WebSocket implementation this project did
// not write checks our framing, and JSON.parse checks our JSON.
// usage: node ws_client.js ws://127.0.0.1:PORT/ws ADMIN_TOKEN
// Exit 0 when every check passes; 1 with a message otherwise.
'use strict';
const WebSocket = require('ws');

const url = process.argv[2];
const token = process.argv[3];
const fail = (msg) => {
  console.error('FAIL: ' + msg);
  process.exit(1);
};
setTimeout(() => fail('timed out'), 15000).unref();

function open(headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const pending = new Map();
    const notes = [];
    let waiters = [];
    ws.on('message', (buf) => {
      const msg = JSON.parse(buf.toString());
      if (msg.method) {
        notes.push(msg);
        waiters.forEach((w) => w());
        waiters = [];
        return;
      }
      const p = pending.get(msg.id);
      if (!p) fail('answer with unknown id ' + buf);
      pending.delete(msg.id);
      p(msg);
    });
    ws.on('open', () => {
      let next = 1;
      resolve({
        ws,
        notes,
        call(method, params) {
          const id = next++;
          ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
          return new Promise((r) => pending.set(id, r));
        },
        waitNotes(n) {
          return new Promise((r) => {
            const check = () => (notes.length >= n ? r() : waiters.push(check));
            check();
          });
        },
      });
    });
    ws.on('error', reject);
  });
}

(async () => {
  const anon = await open({});
  const info = await anon.call('node_info');
  if (!info.result || typeof info.result.version !== 'string') fail('node_info: ' + JSON.stringify(info));

  // Answers come as calls complete: the slow call is sent first and answered last.
  const order = [];
  const slow = anon.call('rpc_echo', { delay_ms: 200, tag: 'slow' }).then((m) => order.push(m.result.tag));
  const fast = [];
  for (let i = 0; i < 50; i++) fast.push(anon.call('rpc_echo', { tag: 'f' + i }).then((m) => order.push(m.result.tag)));
  await Promise.all([slow, ...fast]);
  if (order[order.length - 1] !== 'slow') fail('slow call was not answered last: ' + order.join(','));

  const denied = await anon.call('bus_publish', { topic: 'test.x', data: 1 });
  if (!denied.error || denied.error.code !== -32001) fail('anonymous bus_publish: ' + JSON.stringify(denied));

  const sub = await anon.call('bus_subscribe', ['test.>']);
  if (typeof sub.result !== 'string') fail('bus_subscribe: ' + JSON.stringify(sub));

  const admin = await open({ Authorization: 'Bearer ' + token });
  const pub = await admin.call('bus_publish', { topic: 'test.a', data: { x: [1, 2] } });
  if (pub.result !== true) fail('bus_publish: ' + JSON.stringify(pub));
  await admin.call('bus_publish', { topic: 'test.b', data: 'plain' });
  await anon.waitNotes(2);
  const n0 = anon.notes[0];
  if (n0.jsonrpc !== '2.0' || n0.method !== 'bus_subscription' || n0.params.subscription !== sub.result ||
      n0.params.result.topic !== 'test.a' || n0.params.result.data.x[1] !== 2)
    fail('notification shape: ' + JSON.stringify(n0));
  if (anon.notes[1].params.result.data !== 'plain') fail('string data: ' + JSON.stringify(anon.notes[1]));

  const un = await anon.call('bus_unsubscribe', [sub.result]);
  if (un.result !== true) fail('bus_unsubscribe: ' + JSON.stringify(un));

  const bad = await open({ Authorization: 'Bearer not-a-token' });
  const r = await bad.call('node_info');
  if (!r.error || r.error.code !== -32001) fail('wrong token: ' + JSON.stringify(r));

  anon.ws.close();
  admin.ws.close();
  bad.ws.close();
  console.log('OK');
  process.exit(0);
})().catch((e) => fail(e.stack || String(e)));
