// Kubernetes Events a source can post for the agent (controllers/kube: kubeEventSink; src/events: what is posted).

/** A core/v1 Event as the apiserver takes it. */
export interface CoreEvent {
  readonly apiVersion: 'v1';
  readonly kind: 'Event';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly involvedObject: { readonly apiVersion: 'v1'; readonly kind: 'Node'; readonly name: string; readonly uid: string };
  readonly reason: string;
  readonly message: string;
  readonly type: 'Normal' | 'Warning';
  readonly source: { readonly component: string; readonly host: string };
  readonly reportingComponent: string;
  readonly reportingInstance: string;
  readonly firstTimestamp: string;
  readonly lastTimestamp: string;
  readonly count: number;
}

/** Where events go (controllers/kube: kubeEventSink posts them to the apiserver). */
export interface EventSink {
  create(event: CoreEvent): Promise<void>;
}
