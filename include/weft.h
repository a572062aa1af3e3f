/* weft.h - an M:N green-thread runtime with the asyncio toolbox for C.
 *
 * One header, organised by concept; each part lives in include/weft/:
 *   core.h   wf_run, configuration, errors
 *   task.h   spawn, join, detach, cancel, yield
 *   time.h   the clock, sleep, deadlines, callback timers
 *   io.h     waiting for file descriptors through the poller
 *   net.h    sockets: TCP (IPv4, IPv6), UDP, Unix-domain
 *   stream.h buffered streams (StreamReader/Writer), open_connection
 *   server.h servers: a task per connection, graceful shutdown
 *   combinators.h  gather, wait, wait_for, as_completed, timeout scopes,
 *            shield, task groups, futures, cross-thread entry
 *   sync.h   locks, events, conditions, semaphores, barriers, queues,
 *            select, generators
 *
 * docs/api.md lists every function beside its asyncio counterpart.
 */
#ifndef WEFT_H
#define WEFT_H

#include "weft/core.h"
#include "weft/task.h"
#include "weft/time.h"
#include "weft/io.h"
#include "weft/net.h"
#include "weft/stream.h"
#include "weft/server.h"
#include "weft/combinators.h"
#include "weft/sync.h"

#endif
