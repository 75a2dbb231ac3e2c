// What the fleet tests share: worker hosts in processes of their own
// (fleet-host.mjs), a producer with BullMQ's own Queue, and looks at the
// processes a host left behind.
import { fork } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { waitFor } from './helpers.mjs'

const require = createRequire(import.meta.url)
export const { Queue, QueueEvents, Relay } = require('bullmq')
export const { cancelTranscription } = require('persistent-whisper/bullmq')

const HOST_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'fleet-host.mjs')

/**
 * Cleanups run last-registered first (t.after runs hooks in the order they
 * were added, and a producer must close before its Redis stops).
 */
export function cleanups(t) {
  const stack = []
  t.after(async () => {
    for (const fn of stack.reverse()) await fn()
  })
  return (fn) => stack.push(fn)
}

/** Lock settings small enough for a test to see a dead host's job come back in seconds. */
export const QUICK_LOCKS = { lockDuration: 3000, stalledInterval: 1000, runRetryDelay: 200 }

/**
 * Starts a worker host (a Node process) on `queue`; resolves once it is
 * connected and subscribed. `pin`: a core to run it (and its whisper) on, with taskset.
 */
export async function startHost(redis, { queue, name, worker = QUICK_LOCKS, engine = {}, pin } = {}) {
  const env = { ...process.env, FLEET_HOST: JSON.stringify({ queue, name, connection: redis.connection, worker, engine }) }
  const child =
    pin === undefined
      ? fork(HOST_SCRIPT, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : fork(HOST_SCRIPT, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execPath: 'taskset', execArgv: ['-c', String(pin), process.execPath] })
  const messages = []
  child.on('message', (m) => messages.push({ ...m, at: Date.now() }))
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const host = {
    name,
    child,
    messages,
    exited,
    /** The first message of this type (and matching `pred`), waited for. */
    message: (type, pred = () => true, ms) => waitFor(`${name}: ${type}`, () => messages.find((m) => m.type === type && pred(m)), ms),
    /** Job ids this host reported completed (BullMQ accepted its result). */
    completed: () => messages.filter((m) => m.type === 'completed').map((m) => m.jobId),
    cancel: (jobId, reason) => child.send({ type: 'cancel', jobId, reason }),
    async close(force = false) {
      child.send({ type: 'close', force })
      return exited
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      return exited
    },
  }
  await Promise.race([
    host.message('ready', undefined, 60_000),
    exited.then(({ code, signal }) => {
      throw new Error(`host ${name} exited before it was ready (code ${code}, signal ${signal})`)
    }),
  ])
  return host
}

/** A producer: BullMQ's Queue and QueueEvents, and a Relay for cancellations. */
export async function startProducer(redis, queueName) {
  const queue = new Queue(queueName, { connection: redis.connection })
  const events = new QueueEvents(queueName, { connection: redis.connection })
  const relay = new Relay({ connection: redis.connection })
  // Connection errors while a test restarts Redis are expected.
  for (const emitter of [queue, events, relay]) emitter.on('error', () => {})
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), relay.waitUntilReady()])
  return {
    queue,
    events,
    relay,
    async close() {
      await Promise.all([queue.close(), events.close(), relay.close()])
    },
  }
}

/** Polls a job until it has completed or failed (polling survives a Redis restart; events may not). */
export async function settled(queue, jobId, ms = 120_000) {
  return waitFor(
    `job ${jobId} to complete or fail`,
    async () => {
      try {
        const state = await queue.getJobState(jobId)
        if (state !== 'completed' && state !== 'failed') return null
        // Read after the state is final: a job read before may predate its result.
        return Object.assign(await queue.getJob(jobId), { state })
      } catch {
        return null // Redis is restarting
      }
    },
    ms,
  )
}

/** Pids of the processes whose parent is `pid`, by command name (Linux /proc). */
export function childrenOf(pid, name) {
  const found = []
  if (!existsSync('/proc/self/stat')) return found
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(ppid) === pid && (!name || comm === name) && state !== 'Z') found.push(Number(entry))
  }
  return found
}

/** The whisper worker process of a host's engine (backend 'worker'). */
export const whisperOf = (host) => waitFor(`${host.name}'s whisper process`, () => childrenOf(host.child.pid, 'persistent-whis')[0])
