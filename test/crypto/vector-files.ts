import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VECTOR_DIR = fileURLToPath(new URL('../../vectors/', import.meta.url));

export type Vector = Record<string, unknown> & { name: string };

export interface VectorFile {
  file: string;
  source: string;
  kind: string;
  vectors: Vector[];
}

export function loadVectorFiles(): VectorFile[] {
  return readdirSync(VECTOR_DIR)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      ...(JSON.parse(readFileSync(join(VECTOR_DIR, file), 'utf8')) as Omit<VectorFile, 'file'>),
    }));
}
