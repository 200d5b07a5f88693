#!/usr/bin/env node
// Drives one upload with tus-js-client (the client Uppy uses) and prints one JSON object per line:
//   {"event":"request","method":"PATCH","offset":N}   before every request (offset = Upload-Offset sent)
//   {"event":"url","url":"..."}                         once the upload URL is known
//   {"event":"chunk","accepted":N,"total":N}            after every chunk the server accepted
//   {"event":"retry","status":S,"attempt":N,"message":"..."}   when the client decides to retry
//   {"event":"success","url":"..."} or {"event":"error","message":"...","status":S}   at the end
//
// usage: node upload.js --endpoint URL --file PATH [--chunk-size BYTES] [--parallel N]
//                       [--delay-ms MS] [--metadata key=value]... [--header Name=value]...
// --delay-ms waits before each PATCH, so a test can act while an upload is half done.
'use strict'

const fs = require('node:fs')
const tus = require('tus-js-client')

function parseArgs(argv) {
  const opts = { chunkSize: Infinity, parallel: 1, delayMs: 0, metadata: {}, headers: {} }
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]]
    if (value === undefined) throw new Error(`${name} needs a value`)
    if (name === '--endpoint') opts.endpoint = value
    else if (name === '--file') opts.file = value
    else if (name === '--chunk-size') opts.chunkSize = Number(value)
    else if (name === '--parallel') opts.parallel = Number(value)
    else if (name === '--delay-ms') opts.delayMs = Number(value)
    else if (name === '--metadata' || name === '--header') {
      const at = value.indexOf('=')
      if (at < 1) throw new Error(`${name} takes key=value`)
      const target = name === '--metadata' ? opts.metadata : opts.headers
      target[value.slice(0, at)] = value.slice(at + 1)
    } else throw new Error(`unknown option ${name}`)
  }
  if (!opts.endpoint || !opts.file) throw new Error('--endpoint and --file are required')
  return opts
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

function main() {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${err.message}\n`)
    process.exit(2)
  }
  const data = fs.readFileSync(opts.file)
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  const upload = new tus.Upload(data, {
    endpoint: opts.endpoint,
    chunkSize: opts.chunkSize,
    parallelUploads: opts.parallel,
    metadata: opts.metadata,
    headers: opts.headers,
    // Enough retries (about a minute) to ride out a server restart on a busy CI machine.
    retryDelays: [0, 250, 500, 1000, 1000, 1000, 2000, 2000, 2000, 2000, 3000, 3000, 3000, 3000, 5000, 5000, 5000, 5000, 5000, 5000, 5000],
    removeFingerprintOnSuccess: true,
    onBeforeRequest: async (req) => {
      const method = req.getMethod()
      const offset = req.getHeader('Upload-Offset')
      emit({ event: 'request', method, url: req.getURL(), offset: offset == null ? null : Number(offset) })
      if (method === 'PATCH' && opts.delayMs > 0) await sleep(opts.delayMs)
    },
    onUploadUrlAvailable: () => emit({ event: 'url', url: upload.url }),
    onChunkComplete: (_size, accepted, total) => emit({ event: 'chunk', accepted, total }),
    onShouldRetry: (err, attempt) => {
      const status = err.originalResponse ? err.originalResponse.getStatus() : 0
      emit({ event: 'retry', status, attempt, message: String(err.message).split('\n')[0] })
      return status === 0 || status >= 500 || status === 409 || status === 423
    },
    onSuccess: () => {
      emit({ event: 'success', url: upload.url })
      process.exit(0)
    },
    onError: (err) => {
      const status = err.originalResponse ? err.originalResponse.getStatus() : null
      emit({ event: 'error', message: String(err.message), status })
      process.exit(1)
    },
  })
  upload.start()
}

main()
