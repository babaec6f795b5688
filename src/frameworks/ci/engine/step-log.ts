import { StringDecoder } from 'node:string_decoder';

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
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ended = false;

  constructor(emit: (text: string) => void) {
    this.#emit = emit;
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
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending === '') return;
    this.#timer = setTimeout(() => this.#flush(), PARTIAL_LINE_MS);
    this.#timer.unref();
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending !== '') this.#send(this.#pending);
    this.#pending = '';
  }

  #send(text: string): void {
    this.#emit(text);
  }
}
