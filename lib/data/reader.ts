/**
 * DatasetReader: what every reading command needs, whatever the role holding the data
 * (the agency reads its own datasets; a mirror reads one or more agencies').
 */
import type { DatasetSummary } from './datasets.js'
import type { FilesDataset } from './files-dataset.js'
import type { LogDataset, Progress, ReadOptions, RecordView } from './log-dataset.js'

export interface ExportResult {
  kind: string
  path: string
  files?: number
  records?: number
  bytes: number
}

export interface DatasetReader {
  list(): Promise<DatasetSummary[]>
  read(name: string, opts?: ReadOptions): AsyncGenerator<RecordView>
  export(name: string, dir: string, onProgress?: Progress): Promise<ExportResult>
  openFiles(name: string): Promise<FilesDataset>
  openLog(name: string): Promise<LogDataset>
}
