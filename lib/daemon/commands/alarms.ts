/**
 * Alarms: `embassy alarms [--all]` lists this node's alarms with their stable IDs and counts;
 * `embassy alarms ack ID…|--all` acknowledges them. An acknowledged alarm stays in the history
 * (`alarms --all`, marked with when it was acknowledged) and in the counts; it is no longer active
 * (status lists active alarms only).
 *
 * Owns: these records and their text. May import: command, host, text, custody/ (alarm IDs,
 * acknowledgements).
 */
import { EmbassyError } from '../../errors.js'
import type { ListedAlarm } from '../../custody/alarms.js'
import type { Alarm } from '../../custody/receipts.js'
import { defineCommand, usageError } from '../command.js'
import type { Host } from '../host.js'
import { escapeText, short } from '../text.js'

export interface AlarmsResult {
  /** Active alarms (with --all: every alarm kept, acknowledged ones with `acknowledgedAt`), oldest first. */
  alarms: ListedAlarm[]
  active: number
  acknowledged: number
  /** Every alarm ever raised, by kind (acknowledging does not lower them). */
  counts: Record<string, number>
}

export interface AlarmsAckResult {
  /** IDs acknowledged by this command (already acknowledged ones are not repeated). */
  acknowledged: string[]
  /** Active alarms left. */
  active: number
}

/** This node's alarms (its role's list: the agency's custody alarms, a holder's own) and counts. */
async function roleAlarms(host: Host): Promise<{ alarms: Alarm[]; counts: Record<string, number> }> {
  const s = (await (await host.role()).status()) as { alarms?: Alarm[]; alarmCounts?: Record<string, number> }
  return { alarms: s.alarms ?? [], counts: s.alarmCounts ?? {} }
}

export const alarms = defineCommand({
  name: 'alarms',
  spec: {
    usage: 'embassy alarms [--all]   ·   embassy alarms ack ID…|--all',
    summary: 'list this node\'s active alarms with their IDs (acknowledge them with `embassy alarms ack`)',
    details: ['--all             every alarm kept, acknowledged ones too (marked)', 'Counts per kind never go down: acknowledging keeps the alarm in the history.'],
    options: { all: { type: 'boolean' } },
    args: [0, 0]
  },
  input: (line) => ({ all: line.opts.all === true }),
  async handler(host, { all }): Promise<AlarmsResult> {
    const { alarms: list, counts } = await roleAlarms(host)
    const { AlarmAcks } = await import('../../custody/alarms.js')
    const listed = new AlarmAcks(host.node.dir).list(list)
    const active = listed.filter((a) => a.acknowledgedAt === undefined && a.resolvedAt === undefined)
    return { alarms: all ? listed : active, active: active.length, acknowledged: listed.filter((a) => a.acknowledgedAt !== undefined).length, counts }
  },
  format: (r) => formatAlarmList(r)
})

export const alarmsAck = defineCommand({
  name: 'alarms ack',
  spec: {
    usage: 'embassy alarms ack ID…|--all',
    summary: 'acknowledge alarms by ID (from `embassy alarms`), or every active one with --all',
    details: ['ID                an alarm\'s ID as `embassy alarms` lists it', '--all             every active alarm'],
    options: { all: { type: 'boolean' } },
    args: [0, Infinity]
  },
  input(line): { ids: string[]; all: boolean } {
    const all = line.opts.all === true
    const ids = line.args.map((a) => a.trim().toLowerCase())
    if (all === ids.length > 0) throw usageError('give alarm IDs or --all (not both)', 'alarms ack')
    for (const id of ids) if (!/^[0-9a-f]{12}$/.test(id)) throw usageError(`"${escapeText(id.slice(0, 40))}" is not an alarm ID (12 hex characters, as \`embassy alarms\` lists them)`, 'alarms ack')
    return { ids, all }
  },
  async handler(host, { ids, all }): Promise<AlarmsAckResult> {
    const { alarms: list } = await roleAlarms(host)
    const { AlarmAcks } = await import('../../custody/alarms.js')
    const acks = new AlarmAcks(host.node.dir)
    const listed = acks.list(list)
    const known = new Set(listed.map((a) => a.id))
    const missing = ids.filter((id) => !known.has(id))
    if (missing.length) throw EmbassyError.notFound(`no alarm with ID ${missing.join(', ')} (see \`embassy alarms --all\`)`, { ids: missing })
    const target = all ? listed.filter((a) => a.acknowledgedAt === undefined && a.resolvedAt === undefined).map((a) => a.id) : ids
    const acknowledged = acks.ack(target)
    const active = acks.list(list).filter((a) => a.acknowledgedAt === undefined && a.resolvedAt === undefined).length
    return { acknowledged, active }
  },
  format: (r) => `acknowledged ${r.acknowledged.length} alarm${r.acknowledged.length === 1 ? '' : 's'}; ${r.active} active\n`
})

function formatAlarmList(r: AlarmsResult): string {
  const kinds = Object.entries(r.counts)
  const counts = kinds.length ? `raised so far: ${kinds.map(([k, n]) => `${escapeText(k)} ${n}`).join(', ')}\n` : ''
  if (r.alarms.length === 0) return `no active alarms${r.acknowledged ? ` (${r.acknowledged} acknowledged: embassy alarms --all)` : ''}\n${counts}`
  const lines = r.alarms.map(
    (a) =>
      `${a.id}  ${new Date(a.time).toISOString()}  ${escapeText(a.kind)}${a.peer ? ` from ${escapeText(short(a.peer))}` : ''}: ${escapeText(a.detail)}${a.repeats ? ` (and ${a.repeats} more)` : ''}` +
      (a.acknowledgedAt !== undefined ? `  [acknowledged ${new Date(a.acknowledgedAt).toISOString()}]` : '') +
      (a.resolvedAt !== undefined ? `  [repaired ${new Date(a.resolvedAt).toISOString()}]` : '')
  )
  return `${r.active} active alarm${r.active === 1 ? '' : 's'}${r.acknowledged ? `, ${r.acknowledged} acknowledged` : ''}:\n${lines.join('\n')}\n${counts}`
}
