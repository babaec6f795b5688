import { readdirSync } from 'node:fs';

/** The names in a directory, or none when it does not exist or cannot be read (recovery of checkpoints). */
export function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
