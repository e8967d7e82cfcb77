const test = require('node:test');
const assert = require('node:assert');
const { createServer } = require('node:http');
const { handler } = require('./server.js');

test('answers its readiness path and every other path', async () => {
  const server = createServer(handler).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    assert.deepStrictEqual(await (await fetch(`${base}/readyz`)).json(), { status: 'ready' });
    assert.strictEqual((await (await fetch(`${base}/hello`)).json()).path, '/hello');
  } finally {
    server.close();
  }
});
