import { statfsSync } from 'node:fs';
import os from 'node:os';
import { InvalidAttributes } from '../core/errors.ts';
import { Resources } from '../core/resources.ts';

/**
 * The agent's resources when `--resources` does not say, by Mesos's rules: all cpus; memory less
 * 1 GB (half when the machine has under 2 GB); the work dir's disk less 5 GB (half when under
 * 10 GB); ports 31000-32000. Explicit `--resources` entries replace the detected ones by name.
 */
export function detectResources(workDir: string, explicit?: string): Resources {
  const GB = 1024;
  const totalMem = Math.floor(os.totalmem() / (1024 * 1024));
  const mem = totalMem >= 2 * GB ? totalMem - GB : Math.floor(totalMem / 2);
  const disk = diskOf(workDir, GB);
  const detected = Resources.parse(`cpus:${os.availableParallelism()};mem:${mem};disk:${disk};ports:[31000-32000]`);
  if (explicit === undefined || explicit.trim() === '') return detected;
  const given = Resources.parse(explicit);
  const givenNames = new Set(given.toJSON().map((r) => r.name));
  const kept = Resources.fromJSON(detected.toJSON().filter((r) => !givenNames.has(r.name)));
  return kept.add(given);
}

function diskOf(workDir: string, GB: number): number {
  try {
    const st = statfsSync(workDir);
    const total = Math.floor((st.blocks * st.bsize) / (1024 * 1024));
    return total >= 10 * GB ? total - 5 * GB : Math.floor(total / 2);
  } catch {
    return 0; // The work dir's file system cannot be read: offer no disk rather than guess.
  }
}

/** Parses `rack:a;zone:z1` into Mesos TEXT attributes (numbers become SCALAR). */
export function parseAttributes(text: string | undefined): { name: string; type: 'TEXT' | 'SCALAR'; text?: { value: string }; scalar?: { value: number } }[] {
  if (text === undefined || text.trim() === '') return [];
  return text
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf(':');
      if (i <= 0) throw new InvalidAttributes(`attribute '${p}' is not of the form name:value`);
      const name = p.slice(0, i).trim();
      const value = p.slice(i + 1).trim();
      return /^-?\d+(\.\d+)?$/.test(value) ? { name, type: 'SCALAR' as const, scalar: { value: Number(value) } } : { name, type: 'TEXT' as const, text: { value } };
    });
}
