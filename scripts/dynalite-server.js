#!/usr/bin/env node
// dynalite's own cli.js, minus one crash: dynalite 4.0.0 throws from a request's 'error' event
// (index.js: `req.on('error', function (err) { throw err })`), so one client that disconnects in the middle
// of sending a request (a gateway killed with SIGKILL under load, a timed-out call) ends the whole server
// and every later test sees "connection refused". Such an error concerns that one request only: it is
// logged and the server goes on. Any other uncaught error still ends the process.
//   node scripts/dynalite-server.js --host 127.0.0.1 --port PORT [dynalite's other options]
'use strict'
const path = require('path')
const minimist = require(path.join(__dirname, '..', '.tools', 'node_modules', 'minimist'))
const dynalite = require(path.join(__dirname, '..', '.tools', 'node_modules', 'dynalite'))

const argv = minimist(process.argv.slice(2))
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

process.on('uncaughtException', (err) => {
  if (err && CLIENT_GONE.has(err.code)) {
    console.error(`dynalite: a client went away mid-request (${err.code}: ${err.message}); serving on`)
    return
  }
  console.error(err)
  process.exit(1)
})

const server = dynalite(argv).listen(argv.port || 4567, argv.host || undefined, () => {
  const address = server.address()
  console.log('Dynalite listening at: http://%s:%s', argv.host || 'localhost', address.port)
})
