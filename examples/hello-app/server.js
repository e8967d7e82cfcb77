// A release's app as ChangeLens runs it: it listens on $PORT (the colour's port, on 127.0.0.1),
// answers its readiness path, and finds DATABASE_URL and REDIS_URL in its environment if it needs them.
const { createServer } = require('node:http');

function handler(req, res) {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/readyz') return res.end(JSON.stringify({ status: 'ready' }));
  res.end(JSON.stringify({ app: 'hello-app', version: process.env.APP_VERSION ?? 'dev', path: req.url }));
}

if (require.main === module) {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 1) throw new Error(`PORT: expected a TCP port, got ${JSON.stringify(process.env.PORT)}`);
  createServer(handler).listen(port, '127.0.0.1');
}

module.exports = { handler };
