import { StringDecoder } from 'node:string_decoder';
import { SystemClock, type Clock, type Timer } from '../../../core/clock.ts';

/** How long a line without its newline waits for the rest before it is sent as it is (live logs). */
const PARTIAL_LINE_MS = 200;
/** A line longer than this is sent in pieces. */
const MAX_PIECE = 64 * 1024;

/**
 * Cuts a step's output into log pieces: one per line, each with its `\n`, so that the pieces of a
 * step, concatenated, are its output byte for byte (UTF-8 characters split across reads are kept
 * whole). A line still open after PARTIAL_LINE_MS, or longer than MAX_PIECE, goes out without its
 * newline, and its rest follows in the next piece.
 */
export class StepLog {
  readonly #emit: (text: string) => void;
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';
  #timer: Timer | undefined;
  readonly #clock: Clock;
  #ended = false;

  /** `clock` times the wait for the rest of an open line (default the system clock). */
  constructor(emit: (text: string) => void, clock: Clock = new SystemClock()) {
    this.#emit = emit;
    this.#clock = clock;
  }

  write(chunk: Buffer | string): void {
    if (this.#ended) return;
    this.#pending += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    let newline = this.#pending.indexOf('\n');
    while (newline >= 0) {
      this.#send(this.#pending.slice(0, newline + 1));
      this.#pending = this.#pending.slice(newline + 1);
      newline = this.#pending.indexOf('\n');
    }
    while (this.#pending.length > MAX_PIECE) {
      this.#send(this.#pending.slice(0, MAX_PIECE));
      this.#pending = this.#pending.slice(MAX_PIECE);
    }
    this.#arm();
  }

  /** Sends what is left; later writes are dropped. */
  end(): void {
    if (this.#ended) return;
    this.#pending += this.#decoder.end();
    this.#flush();
    this.#ended = true;
  }

  #arm(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (this.#pending === '') return;
    this.#timer = this.#clock.setTimer(PARTIAL_LINE_MS, () => this.#flush());
  }

  #flush(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (this.#pending !== '') this.#send(this.#pending);
    this.#pending = '';
  }

  #send(text: string): void {
    this.#emit(text);
  }
}
