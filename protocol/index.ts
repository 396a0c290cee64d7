export * from './constants.js'
export * from './codecs.js'
export * from './custody.js'
