export interface DemoOptions { log: (line: string) => void; progress: (label: string, done: number, total: number) => void }
export async function runDemo(_opts: DemoOptions): Promise<unknown> { return null }
