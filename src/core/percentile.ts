/**
 * The `p`th percentile of `values`, by the nearest-rank method: the smallest value such that at
 * least `p` per cent of the values are less than or equal to it (the value of rank
 * ceil(p / 100 × n) in ascending order, rank 1 for p = 0). Always one of the values, never an
 * interpolation between two.
 *
 * Contract:
 * - `values` need not be sorted and is not changed: the function sorts a copy (numerically).
 * - `p` is a number in [0, 100]; anything else throws a RangeError. p = 0 is the smallest value,
 *   p = 100 the largest, p = 50 the lower median of an even count.
 * - No values, no percentile: an empty list answers NaN (so that a figure with no samples shows
 *   as NaN, or null in JSON, rather than passing for 0).
 *
 * The rank is computed as ceil(p × n / 100), not ceil(p / 100 × n): p / 100 is inexact in binary
 * (0.07 × 100 = 7.000000000000001), which would skip a rank.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be in [0, 100], not ${p}`);
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p * sorted.length) / 100)));
  return sorted[rank - 1]!;
}
