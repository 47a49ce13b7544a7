// Untrusted input (YAML, JSON, API objects) arrives as `unknown`: this is the one check that a value is a plain
// object whose fields may be read. Arrays and Dates (which the Kubernetes client makes of timestamps) are not.

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
