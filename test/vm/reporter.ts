// A node:test reporter for suites that run inside the VM: one JSON line per finished test, which the host test
// reads back from the shared output folder (guest-suite.ts) and turns into its own subtests.

export interface GuestTestResult {
  readonly name: string;
  /** 0 for a file's top-level tests. */
  readonly nesting: number;
  readonly file: string | undefined;
  readonly outcome: 'pass' | 'fail' | 'skip' | 'todo';
  readonly durationMs: number;
  /** First lines of the failure (message, cause, location). */
  readonly error?: string;
}

interface TestEventData {
  readonly name: string;
  readonly nesting: number;
  readonly file?: string;
  readonly skip?: boolean | string;
  readonly todo?: boolean | string;
  readonly details?: { readonly duration_ms?: number; readonly error?: unknown };
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // node:test wraps the test's error: the cause is what the test threw.
  const inner = error.cause instanceof Error ? error.cause : error;
  return (inner.stack ?? inner.message).split('\n').slice(0, 12).join('\n');
}

export default async function* reporter(source: AsyncIterable<{ type: string; data: unknown }>): AsyncGenerator<string> {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const data = event.data as TestEventData;
    const outcome = event.type === 'test:fail' ? 'fail'
      : data.skip !== undefined && data.skip !== false ? 'skip'
      : data.todo !== undefined && data.todo !== false ? 'todo' : 'pass';
    const result: GuestTestResult = {
      name: data.name,
      nesting: data.nesting,
      file: data.file,
      outcome,
      durationMs: data.details?.duration_ms ?? 0,
      ...(outcome === 'fail' ? { error: describeError(data.details?.error) } : {}),
    };
    yield `${JSON.stringify(result)}\n`;
  }
}
