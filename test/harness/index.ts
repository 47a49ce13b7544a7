// The network-namespace cluster harness, shared by every kernel mode's tests and by the userspace relay's.
export * from './cluster.ts';
export * from './kproxy.ts';
export * from './manifests.ts';
export * from './netns.ts';
export * from './run.ts';
export * from './state.ts';
export * from './flows.ts';
