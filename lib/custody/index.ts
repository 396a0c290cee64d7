/**
 * custody/: what custody means — receipts signed by holders, the agency's checks of them against its
 * own Merkle tree, its durable ledger of verified custody and alarms, and audits (challenges that
 * show a holder has the blocks, audit.ts; their signed log, audit-log.ts).
 * May import: node/, data/, net/, errors, ids, protocol/; never roles/ or above.
 */
export { signReceipt, compactReceipt, verifyReceiptSignature, checkReceipt, type Alarm, type AlarmKind, type HeadEvidence, type StoredReceipt, type ReceiptVerdict } from './receipts.js'
export { CustodyLedger, CUSTODY_FILE, LEDGER_FLUSH_MS } from './ledger.js'
export { InOrder } from './in-order.js'
export { AlarmList, AlarmLog, ALARMS_FILE, ALARM_QUIET_MS, MAX_ALARMS } from './alarms.js'
export { HeadBook, compactHead, signWitnessedHead, verifyWitnessSignature, headEvidence, MAX_HEADS_PER_CORE, type HeadVerdict, type HeadSummary } from './heads.js'
export {
  AUDIT_DEFAULTS,
  MAX_CHALLENGES_IN_FLIGHT,
  ChallengeAnswerer,
  Challenger,
  auditConfidence,
  auditValue,
  planAudit,
  samplesFor,
  storedBlock,
  verifyAnswerSignature,
  type AuditExchange,
  type AuditResult,
  type AuditSettings,
  type StrayAnswer,
  type SweepState
} from './audit.js'
export { AuditBook, AuditLog, AUDITS_FILE, AUDIT_LOG_FILE, AUDIT_EXPORT_FORMAT, verifyAuditExport, type AuditLogEntry, type CoreAudit, type ExportVerdict } from './audit-log.js'
export { AuditRunner, AUDIT_TICK_MS, MAX_PARALLEL_AUDITS, type AuditableCore, type AuditNowOptions, type AuditRunnerDeps, type AuditSummary } from './audit-runner.js'
export { blindAudit, BLIND_AUDIT_DIR, type BlindAuditOptions } from './blind-audit.js'
export {
  CustodySampler,
  CustodySeries,
  loadSeries,
  parseSince,
  pointsIn,
  summarize,
  SERIES_FILE,
  SAMPLE_MS,
  FINE_POINTS,
  COARSE_POINTS,
  MAX_PAIRS,
  MAX_EVENTS,
  STATES as SERIES_STATES,
  type PairSeries,
  type Point as SeriesPoint,
  type SampleInput,
  type SeriesData,
  type SeriesEvent,
  type SeriesState,
  type SeriesSummary,
  type WorstLag
} from './timeseries.js'
