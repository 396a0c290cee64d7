/**
 * History: `embassy accept-rewrite CORE_KEY [--fork N]` — the explicit operator act by which a
 * holder (embassy, mirror) takes a rewrite of one core's history that it refused (a legitimate
 * correction the agency announced). Never automatic.
 *
 * Owns: this record and its text. May import: command, host, ids, roles/ (types).
 */
import { EmbassyError } from '../../errors.js'
import { toZ32 } from '../../ids.js'
import { arg, defineCommand, intOpt, keyArg } from '../command.js'

export interface AcceptRewriteResult {
  core: string
  /** The highest fork this holder now accepts for the core. */
  fork: number
}

export const acceptRewrite = defineCommand({
  name: 'accept-rewrite',
  spec: {
    usage: 'embassy accept-rewrite CORE_KEY [--fork N]',
    summary: 'take a refused rewrite of one held core (a correction the agency announced); holders only',
    details: [
      'CORE_KEY          the core named in the history-rewrite alarm (embassy status --json: alarms)',
      '--fork N          accept up to fork N (default: the highest fork offered so far)',
      'The history this node verified is replaced by the agency\'s new fork on the next check (≤ 1 s).'
    ],
    options: { fork: { type: 'string' } },
    args: [1, 1]
  },
  input: (line) => ({ core: arg(line, 0, 'CORE_KEY'), fork: intOpt(line, 'fork') }),
  async handler(host, input): Promise<AcceptRewriteResult> {
    if (host.node.role === 'agency') throw EmbassyError.wrongRole('accept-rewrite', 'agency', 'embassy or mirror')
    const holder = host.node.role === 'mirror' ? await host.mirror() : await host.embassy()
    const r = holder.acceptRewrite(keyArg(input.core, 'core key'), input.fork)
    return { core: toZ32(r.core), fork: r.fork }
  },
  format: (r) => `accepted the rewrite of core ${r.core} up to fork ${r.fork}; it is taken on the next check\n`
})
