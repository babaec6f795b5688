/** `Omit` over each member of a union (a plain `Omit` would merge the members into one type). */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
