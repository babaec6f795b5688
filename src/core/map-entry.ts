/** Sets `key` to `value` in `map`, or deletes it when `value` is undefined (a change that clears). */
export function setOrDelete<K, V>(map: Map<K, V>, key: K, value: V | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}
