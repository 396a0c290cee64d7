/**
 * The CLI's entry into the library: the command table and help text, runCommand(), the control
 * socket, and the types a front end needs. bin/ imports it directly (it is not part of lib/index.ts).
 *
 * Light on purpose: every CLI call loads this module, so it exports no value whose module loads the
 * node, the roles or the network (Daemon, NodeHost, the demo: lib/index.ts has them); each command
 * loads those when it runs (BENCHMARKS.md "CLI start-up, lazily"; test/cli-startup.test.ts).
 *
 * Owns: nothing but these exports. May import: daemon/, errors.
 */
export { EmbassyError } from '../errors.js'
export {
  defineCommand,
  defineLocalCommand,
  runOnHost,
  usageError,
  type AnyCommand,
  type Caller,
  type CallerIO,
  type CallerProcess,
  type Command,
  type CommandInput,
  type CommandIO,
  type CommandSpec,
  type FormatView,
  type LocalCommand,
  type NodeCommand,
  type Options
} from './command.js'
export { COMMANDS, GLOBAL_OPTIONS, GROUPS, commandHelp, findCommand, mainHelp } from './commands/index.js'
export { runCommand, runOnNode } from './run-command.js'
export type { DaemonOptions, LogEvent } from './daemon.js'
export type { Host } from './host.js'
export { ControlServer, callControl, controlSocketPath } from './control.js'
export { escapeText, fmtBytes, redactSecret } from './text.js'
export { nodeStatus, type InitResult, type NodeStatus, type PeerSummary } from './commands/node.js'
export type { AppendResult, ExportOutput, PublishOutput, ReadRecord, ReadResult } from './commands/data.js'
export type { AllowResult, DenyResult, FollowResult, MirrorResult } from './commands/peers.js'
export { kitExportHandler, type KitExportResult } from './commands/kit.js'
export { verifyHandler, formatVerifyFailures } from './commands/verify.js'
export { formatLogEvent, type BootstrapInfo } from './commands/run.js'
export type { DemoOptions, DemoResult } from './demo.js'
