/** Merging a task's parameter overrides into its defaults, with a clear error for a bad value. */
export function resolveParams<P extends object>(
  task: string,
  defaults: Readonly<P>,
  overrides: Partial<P> | undefined,
  check: (p: P) => string[],
): P {
  const unknown = Object.keys(overrides ?? {}).filter((k) => !(k in defaults));
  if (unknown.length > 0) {
    throw new Error(`task ${task}: unknown parameter(s) ${unknown.join(', ')} (known: ${Object.keys(defaults).join(', ')})`);
  }
  const params = { ...defaults, ...(overrides ?? {}) } as P;
  const problems = check(params);
  if (problems.length > 0) throw new Error(`task ${task}: ${problems.join('; ')}`);
  return params;
}

/** Problems for the named fields that are not integers ≥ min. */
export function integersAtLeast(params: object, min: number, names: readonly string[]): string[] {
  const rec = params as Record<string, unknown>;
  return names
    .filter((n) => !(Number.isInteger(rec[n]) && (rec[n] as number) >= min))
    .map((n) => `parameter ${n} must be an integer ≥ ${min}, got ${JSON.stringify(rec[n])}`);
}
