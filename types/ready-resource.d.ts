// ready-resource (1.2.x) ships its own declaration: node_modules/ready-resource/index.d.ts,
// an ambient `declare module 'ready-resource' { class ReadyResource extends EventEmitter {...}; export = ReadyResource }`
// with opening/closing/opened/closed, ready(), close(), and `protected _open()/_close(): Promise<void>`.
// It already works as a base class from strict TS (`override async _open()` under noImplicitOverride)
// via `import ReadyResource from 'ready-resource'`.
//
// It is deliberately NOT redeclared here: a second `declare module 'ready-resource'` merges with the
// shipped one and yields TS2300 "Duplicate identifier 'ReadyResource'" (hidden only by skipLibCheck).
// corestore.d.ts / hyperdrive.d.ts / hyperbee.d.ts build on the shipped declaration.
