import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inheritedSockets, workerStdio } from '../../src/server/socket-activation.ts'

/**
 * Reading systemd's variables (man sd_listen_fds) and handing the sockets to
 * workers. The descriptors themselves, and matching them to listeners, are
 * tested with real sockets and processes in test/e2e/socket-activation.test.ts.
 */

describe('inheritedSockets', () => {
  test("another process's LISTEN_PID: no socket, and every variable is removed", () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b', PATH: '/bin' }
    assert.deepEqual(inheritedSockets(env, 1234), [])
    assert.deepEqual(env, { PATH: '/bin' })
  })

  test('without LISTEN_PID or LISTEN_FDS: no socket activation', () => {
    assert.deepEqual(inheritedSockets({ LISTEN_FDS: '1' }, 1234), [])
    assert.deepEqual(inheritedSockets({ LISTEN_PID: '1234' }, 1234), [])
    assert.deepEqual(inheritedSockets({}, 1234), [])
  })

  test('LISTEN_FDS=0 for this process: no socket', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '1234', LISTEN_FDS: '0' }
    assert.deepEqual(inheritedSockets(env, 1234), [])
    assert.deepEqual(env, {})
  })

  test('malformed variables for this process are errors naming them, and are removed all the same', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '1234', LISTEN_FDS: 'two', LISTEN_FDNAMES: 'web' }
    assert.throws(() => inheritedSockets(env, 1234), { message: 'socket activation: LISTEN_FDS="two" is not a number of descriptors' })
    assert.deepEqual(env, {})
    assert.throws(() => inheritedSockets({ LISTEN_PID: 'me', LISTEN_FDS: '1' }, 1234), { message: 'socket activation: LISTEN_PID="me" is not a process id' })
    assert.throws(() => inheritedSockets({ LISTEN_PID: '1234', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web' }, 1234), { message: 'socket activation: LISTEN_FDNAMES names 1 socket and LISTEN_FDS says 2' })
  })

  test("in a worker: the primary's list, removed from the environment", () => {
    const { env: passed } = workerStdio([])
    const env: NodeJS.ProcessEnv = { ...passed, LISTEN_PID: '99', LISTEN_FDS: '1' }
    assert.deepEqual(inheritedSockets(env, 1234), [])
    assert.deepEqual(env, {})
    assert.throws(() => inheritedSockets({ EDGEBOX_LISTEN_FDS: '{"fd":3}' }, 1234), { message: 'EDGEBOX_LISTEN_FDS is not a list of descriptors' })
  })
})

describe('workerStdio', () => {
  test("each socket at its own descriptor number, standard streams inherited, the IPC channel after them, and the list in the worker's environment", () => {
    const sockets = [
      { fd: 3, name: 'http' },
      { fd: 4, name: 'https' },
    ]
    const { stdio, env } = workerStdio(sockets)
    assert.deepEqual(stdio, ['inherit', 'inherit', 'inherit', 3, 4, 'ipc'])
    assert.deepEqual(JSON.parse(env.EDGEBOX_LISTEN_FDS!), sockets)
  })

  test('a gap in the numbers is filled with nothing', () => {
    assert.deepEqual(workerStdio([{ fd: 5, name: 'x' }]).stdio, ['inherit', 'inherit', 'inherit', 'ignore', 'ignore', 5, 'ipc'])
  })
})
