/**
 * custody/: what custody means — receipts signed by holders, the agency's checks of them against its
 * own Merkle tree, and its durable ledger of verified custody and alarms.
 * May import: node/, data/, net/, errors, ids, protocol/; never roles/ or above.
 */
export { signReceipt, verifyReceiptSignature, checkReceipt, type Alarm, type AlarmKind, type HeadEvidence, type StoredReceipt, type ReceiptVerdict } from './receipts.js'
export { CustodyLedger, CUSTODY_FILE, LEDGER_FLUSH_MS } from './ledger.js'
export { AlarmList, AlarmLog, ALARMS_FILE, ALARM_QUIET_MS, MAX_ALARMS } from './alarms.js'
export { HeadBook, signWitnessedHead, verifyWitnessSignature, headEvidence, MAX_HEADS_PER_CORE, type HeadVerdict, type HeadSummary } from './heads.js'
