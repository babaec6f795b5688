import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../core/clock.ts';
import { StepLog } from './step-log.ts';

describe('StepLog', () => {
  it('sends whole lines, joining lines split across reads and keeping split UTF-8 characters whole', () => {
    const pieces: string[] = [];
    const log = new StepLog((t) => pieces.push(t));
    const text = Buffer.from('one\ntw€o\nthr');
    const cut = text.indexOf(Buffer.from('€')) + 1;
    log.write(text.subarray(0, cut));
    log.write(text.subarray(cut));
    log.write(Buffer.from('ee\n'));
    log.end();
    log.write(Buffer.from('after the end\n'));
    assert.deepEqual(pieces, ['one\n', 'tw€o\n', 'three\n']);
  });

  it('sends a line still open after a moment as it is, and its rest later', () => {
    const pieces: string[] = [];
    const clock = new ManualClock();
    const log = new StepLog((t) => pieces.push(t), clock);
    log.write(Buffer.from('waiting...'));
    clock.advance(199);
    assert.deepEqual(pieces, [], 'an open line waits a moment for its rest');
    clock.advance(1);
    assert.deepEqual(pieces, ['waiting...']);
    log.write(Buffer.from(' done\n'));
    log.end();
    assert.deepEqual(pieces, ['waiting...', ' done\n']);
  });

  it('sends the end of the output without a newline when the step ends', () => {
    const pieces: string[] = [];
    const log = new StepLog((t) => pieces.push(t));
    log.write(Buffer.from('last'));
    log.end();
    assert.deepEqual(pieces, ['last']);
  });
});
