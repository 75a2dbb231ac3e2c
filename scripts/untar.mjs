// Unpacks a .tgz (an npm package's tarball) with Node alone. No tar
// program: on Windows the one on the PATH may be Git's GNU tar, which reads
// an archive named `D:\...` as `host:file` on a remote machine.
// Regular files and folders only (npm packs nothing else); an entry that
// would land outside `dest` is refused.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join, normalize, sep } from 'node:path'
import { gunzipSync } from 'node:zlib'

const BLOCK = 512

/** A NUL-terminated text field of a header. */
const text = (header, start, length) => {
  const bytes = header.subarray(start, start + length)
  const end = bytes.indexOf(0)
  return bytes.subarray(0, end < 0 ? length : end).toString('utf8')
}

const octal = (header, start, length) => {
  if (header[start] & 0x80) throw new Error('tar: a base-256 number (a file over 8 GiB) is not supported')
  return parseInt(text(header, start, length).trim() || '0', 8)
}

/** A pax extended header's `path` record, if any. */
function paxPath(body) {
  for (let at = 0; at < body.length; ) {
    const space = body.indexOf(0x20, at)
    if (space < 0) break
    const length = Number(body.subarray(at, space).toString('ascii'))
    if (!(length > 0)) break
    const record = body.subarray(space + 1, at + length - 1).toString('utf8')
    if (record.startsWith('path=')) return record.slice(5)
    at += length
  }
  return null
}

/**
 * Unpacks `tgz` into `dest`. With `only` (a folder inside the archive, `/`
 * separated), only that folder's entries.
 */
export function untar(tgz, dest, { only } = {}) {
  const data = gunzipSync(readFileSync(tgz))
  let longName = null
  for (let at = 0; at + BLOCK <= data.length; ) {
    const header = data.subarray(at, at + BLOCK)
    if (header.every((b) => b === 0)) break
    const size = octal(header, 124, 12)
    const type = String.fromCharCode(header[156] || 0x30)
    const body = data.subarray(at + BLOCK, at + BLOCK + size)
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK
    if (type === 'L') {
      longName = text(body, 0, body.length)
      continue
    }
    if (type === 'x') {
      longName = paxPath(body) ?? longName
      continue
    }
    if (type === 'g') continue
    const prefix = text(header, 345, 155)
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100))
    longName = null
    const path = normalize(name)
    if (isAbsolute(path) || /^[A-Za-z]:/.test(path) || path.split(/[\\/]/).includes('..')) {
      throw new Error(`${tgz}: the entry ${JSON.stringify(name)} would land outside ${dest}`)
    }
    const slashed = path.split(sep).join('/')
    if (only && slashed !== only && !slashed.startsWith(`${only}/`)) continue
    const target = join(dest, path)
    if (type === '5') {
      mkdirSync(target, { recursive: true })
    } else if (type === '0' || type === '7') {
      mkdirSync(dirname(target), { recursive: true })
      writeFileSync(target, body, { mode: (octal(header, 100, 8) & 0o755) | 0o644 })
    }
    // Links and devices: npm never packs them; nothing to unpack.
  }
}
