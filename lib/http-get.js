'use strict'
// GET over HTTP or HTTPS with what a download from behind a company proxy
// needs: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (tunnelled with CONNECT for
// https), NO_PROXY, proxy credentials, redirects, and an AbortSignal.
const http = require('node:http')
const https = require('node:https')
const tls = require('node:tls')

const MAX_REDIRECTS = 5

function env(...names) {
  for (const name of names) {
    const value = process.env[name] ?? process.env[name.toLowerCase()]
    if (value && value.trim()) return value.trim()
  }
  return undefined
}

/** Whether NO_PROXY exempts this host ("*", exact names, ".suffix" or "suffix", host:port). */
function bypassed(url) {
  const list = env('NO_PROXY')
  if (!list) return false
  const host = url.hostname.toLowerCase()
  return list.split(',').some((raw) => {
    let entry = raw.trim().toLowerCase()
    if (!entry) return false
    if (entry === '*') return true
    const [name, port] = entry.split(':')
    if (port && port !== (url.port || (url.protocol === 'https:' ? '443' : '80'))) return false
    entry = name.replace(/^\*?\./, '')
    return host === entry || host.endsWith(`.${entry}`)
  })
}

/** The proxy for this URL, if the environment names one. */
function proxyFor(url) {
  if (bypassed(url)) return undefined
  const value = url.protocol === 'https:' ? env('HTTPS_PROXY', 'ALL_PROXY') : env('HTTP_PROXY', 'ALL_PROXY')
  if (!value) return undefined
  return new URL(value.includes('://') ? value : `http://${value}`)
}

function proxyAuth(proxy) {
  if (!proxy.username) return {}
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`
  return { 'Proxy-Authorization': `Basic ${Buffer.from(credentials).toString('base64')}` }
}

/** A TLS socket to `url`'s host through an HTTP CONNECT tunnel. */
function tunnel(proxy, url, signal) {
  return new Promise((resolve, reject) => {
    const port = url.port || '443'
    const request = http.request({
      host: proxy.hostname,
      port: proxy.port || 80,
      method: 'CONNECT',
      path: `${url.hostname}:${port}`,
      headers: { Host: `${url.hostname}:${port}`, ...proxyAuth(proxy) },
      signal,
    })
    request.once('connect', (response, socket) => {
      if (response.statusCode !== 200) {
        socket.destroy()
        reject(new Error(`the proxy ${proxy.host} refused the tunnel to ${url.host} (HTTP ${response.statusCode})`))
        return
      }
      resolve(tls.connect({ socket, servername: url.hostname }))
    })
    request.once('error', reject)
    request.end()
  })
}

/** One request, no redirects followed: resolves with the response. */
async function requestOnce(url, headers, signal) {
  const proxy = proxyFor(url)
  const secure = url.protocol === 'https:'
  const options = { method: 'GET', headers: { 'User-Agent': 'persistent-whisper', ...headers }, signal }
  let module = secure ? https : http
  let target = url
  if (proxy && secure) {
    const socket = await tunnel(proxy, url, signal)
    options.createConnection = () => socket
    options.agent = false
  } else if (proxy) {
    // A plain-HTTP proxy takes the whole URL as the request path.
    module = http
    target = proxy
    options.path = url.href
    options.headers = { ...options.headers, Host: url.host, ...proxyAuth(proxy) }
  }
  return new Promise((resolve, reject) => {
    const request = module.request(target, options, resolve)
    request.once('error', reject)
    request.end()
  })
}

/**
 * GET `url`, following redirects (with the same headers, such as Range).
 * Resolves with the final response, whose body is unread.
 */
async function get(url, { headers = {}, signal } = {}) {
  let current = new URL(url)
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw new Error(`${current.protocol} URLs are not supported: use http or https`)
    }
    const response = await requestOnce(current, headers, signal)
    const location = response.headers.location
    if (![301, 302, 303, 307, 308].includes(response.statusCode) || !location) return { response, url: current.href }
    response.resume()
    if (hop === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url}`)
    current = new URL(location, current)
  }
}

module.exports = { get, proxyFor }
