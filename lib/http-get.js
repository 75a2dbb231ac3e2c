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

/** A URL's host as a socket takes it: an IPv6 literal without its brackets. */
const bareHost = (url) => url.hostname.replace(/^\[(.*)\]$/, '$1')

/** Credentials of the proxy URL, for the proxy only (never as Authorization, which the origin would get). */
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
      host: bareHost(proxy),
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
  let start = (callback) => (secure ? https : http).request(url, options, callback)
  if (proxy && secure) {
    const socket = await tunnel(proxy, url, signal)
    options.createConnection = () => socket
    options.agent = false
  } else if (proxy) {
    // A plain-HTTP proxy takes the whole URL as the request path. Its host
    // and port are given apart, not as the proxy's URL: http.request would
    // turn that URL's credentials into an Authorization header, which the
    // proxy passes on to the origin.
    options.host = bareHost(proxy)
    options.port = proxy.port || 80
    options.path = url.href
    options.headers = { ...options.headers, Host: url.host, ...proxyAuth(proxy) }
    start = (callback) => http.request(options, callback)
  }
  return new Promise((resolve, reject) => {
    const request = start(resolve)
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
