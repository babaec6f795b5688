/** Slipway's version, reported by the APIs (GET_VERSION, /master/state). */
export const VERSION = '0.1.0';
