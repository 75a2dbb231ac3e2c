// A local HTTP server on 127.0.0.1 that serves model files the way Hugging
// Face does (Range requests answered with 206), for the download tests. It
// records every request, and can misbehave on purpose: cut a response off
// mid-file, or send slowly.
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'

/**
 * files: { '/path': Buffer }. Options: cutFirstAfter (bytes: the first full
 * response is cut off there), bytesPerTick (send in slices, one per 10 ms).
 */
export async function modelServer(files, { cutFirstAfter, bytesPerTick } = {}) {
  const requests = []
  let cut = cutFirstAfter !== undefined
  const server = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, range: req.headers.range })
    const body = files[req.url.split('?')[0]]
    if (!body) {
      res.writeHead(404, { 'Content-Type': 'text/plain' })
      res.end('Entry not found')
      return
    }
    let start = 0
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    if (range) {
      start = Number(range[1])
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` })
        res.end()
        return
      }
      res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`, 'Accept-Ranges': 'bytes' })
    } else {
      res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': 'bytes' })
    }
    const rest = body.subarray(start)
    if (cut && !range) {
      cut = false
      // Half a file, then the connection drops.
      res.write(rest.subarray(0, cutFirstAfter), () => res.destroy())
      return
    }
    if (!bytesPerTick) {
      res.end(rest)
      return
    }
    let at = 0
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer)
      res.write(rest.subarray(at, at + bytesPerTick))
      at += bytesPerTick
      if (at >= rest.length) {
        clearInterval(timer)
        res.end()
      }
    }, 10)
    res.on('close', () => clearInterval(timer))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}`
  return {
    base,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}

/** A file's bytes, read once per test file. */
export const bytesOf = (file) => readFileSync(file)

/**
 * A FAULT-INJECTION server for the download tests: `handle(req, res, n)`
 * answers the n-th request (from 0) however the test needs, misbehaving on
 * purpose. It records every request (url, range, authorization headers);
 * close() also ends connections it left hanging.
 */
export async function faultServer(handle) {
  const requests = []
  const server = createServer((req, res) => {
    requests.push({ url: req.url, range: req.headers.range, authorization: req.headers.authorization, proxyAuthorization: req.headers['proxy-authorization'] })
    handle(req, res, requests.length - 1)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    },
  }
}
