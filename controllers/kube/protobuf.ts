// Lists of Services, EndpointSlices and Nodes in the apiserver's protobuf encoding, decoded straight into the slim
// objects slim.ts makes from JSON (the same values, the same shape: a list read either way feeds the store the same).
// Why: kube-apiserver serves a 10k-slice list in protobuf 5-15× faster than in JSON and 4.6× smaller (measured here:
// 0.23-0.33 s and 8.8 MB against 1.4-5.3 s and 41 MB), and kube-proxy reads it that way. Only lists: watch events are
// small, and stay JSON.
//
// The wire format: "k8s\0", then a runtime.Unknown whose `raw` holds the List message. Field numbers are those of the
// generated.proto files of k8s.io/api and k8s.io/apimachinery (stable: protobuf fields are never renumbered). Where
// JSON omits a Go zero value (`omitempty`) and protobuf still carries it (non-pointer strings and ints), the decoder
// leaves it out too. Unknown fields are skipped by wire type, so newer servers decode as well. Pure.
import type { ListPage } from './client.ts';
import { LAST_CHANGE_TRIGGER_ANNOTATION, SERVICE_NAME_LABEL, TOPOLOGY_HINTS_ANNOTATION, TOPOLOGY_MODE_ANNOTATION } from './slim.ts';

type Raw = Record<string, unknown>;

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';
const MAGIC = [0x6b, 0x38, 0x73, 0x00]; // "k8s\0"

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

/** A cursor over one message (or a sub-range of one). */
class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  more(): boolean {
    return this.pos < this.end;
  }

  /** A varint as an unsigned number (exact below 2^53; the fields read here never come near). */
  varint(): number {
    let low = 0;
    let shift = 0;
    let byte = 0;
    do {
      if (this.pos >= this.end) throw new Error('protobuf: truncated varint');
      byte = this.buf[this.pos++] as number;
      if (shift < 28) low |= (byte & 0x7f) << shift;
      else if (shift < 53) low += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return low;
  }

  /** An int32 field: the low 32 bits of the varint, signed (a negative int32 is sent as 10 bytes). */
  int32(): number {
    let value = 0;
    let shift = 0;
    let byte = 0;
    do {
      if (this.pos >= this.end) throw new Error('protobuf: truncated varint');
      byte = this.buf[this.pos++] as number;
      // `<<` works on 32 bits: the fifth byte's high bits fall off, which is the truncation to int32
      if (shift < 32) value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    return value | 0;
  }

  bool(): boolean {
    return this.varint() !== 0;
  }

  /** The bounds of a length-delimited field. */
  range(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (start + length > this.end) throw new Error('protobuf: truncated field');
    this.pos = start + length;
    return [start, start + length];
  }

  string(): string {
    const [start, end] = this.range();
    return this.buf.toString('utf8', start, end);
  }

  sub(): Reader {
    const [start, end] = this.range();
    return new Reader(this.buf, start, end);
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === BYTES) this.range();
    else if (wire === FIXED64) this.pos += 8;
    else if (wire === FIXED32) this.pos += 4;
    else throw new Error(`protobuf: wire type ${wire} not supported`);
    if (this.pos > this.end) throw new Error('protobuf: truncated field');
  }

  /** Calls `field` for every field of the message; `field` consumes the value or returns false to skip it. */
  fields(field: (number: number, wire: number) => boolean): void {
    while (this.more()) {
      const key = this.varint();
      const wire = key & 7;
      if (!field(Math.floor(key / 8), wire)) this.skip(wire);
    }
  }
}

const nonEmpty = (out: Raw, key: string, value: string): void => { if (value !== '') out[key] = value; };

/** metav1.Time as JSON writes it: RFC 3339, whole seconds, UTC. */
function time(r: Reader): string {
  let seconds = 0;
  r.fields((n) => (n === 1 ? ((seconds = r.varint()), true) : false));
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A map<string, string> entry; the pair is kept when `keep` wants the key. */
function mapEntry(r: Reader, into: Raw, keep: ReadonlySet<string>): void {
  let key = '';
  let value = '';
  r.fields((n) => {
    if (n === 1) key = r.string();
    else if (n === 2) value = r.string();
    else return false;
    return true;
  });
  if (keep.has(key)) into[key] = value;
}

/** ObjectMeta, as slimMetadata keeps it. */
function metadata(r: Reader, annotations: ReadonlySet<string>, labels: ReadonlySet<string>): Raw {
  const out: Raw = {};
  const keptLabels: Raw = {};
  const keptAnnotations: Raw = {};
  r.fields((n) => {
    if (n === 1) nonEmpty(out, 'name', r.string());
    else if (n === 3) nonEmpty(out, 'namespace', r.string());
    else if (n === 6) nonEmpty(out, 'resourceVersion', r.string());
    else if (n === 9) out.deletionTimestamp = time(r.sub());
    else if (n === 11) mapEntry(r.sub(), keptLabels, labels);
    else if (n === 12) mapEntry(r.sub(), keptAnnotations, annotations);
    else return false;
    return true;
  });
  if (Object.keys(keptAnnotations).length > 0) out.annotations = keptAnnotations;
  if (Object.keys(keptLabels).length > 0) out.labels = keptLabels;
  return out;
}

const SERVICE_ANNOTATIONS = new Set([TOPOLOGY_MODE_ANNOTATION, TOPOLOGY_HINTS_ANNOTATION]);
const SLICE_ANNOTATIONS = new Set([LAST_CHANGE_TRIGGER_ANNOTATION]);
const SLICE_LABELS = new Set([SERVICE_NAME_LABEL]);
const NODE_LABELS = new Set(['topology.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/zone', 'kubernetes.io/hostname']);
const NONE: ReadonlySet<string> = new Set();

/** IntOrString as JSON writes it: a number, or a string. */
function intOrString(r: Reader): number | string {
  let type = 0;
  let intVal = 0;
  let strVal = '';
  r.fields((n) => {
    if (n === 1) type = r.varint();
    else if (n === 2) intVal = r.int32();
    else if (n === 3) strVal = r.string();
    else return false;
    return true;
  });
  return type === 1 ? strVal : intVal;
}

function servicePort(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n === 1) nonEmpty(out, 'name', r.string());
    else if (n === 2) nonEmpty(out, 'protocol', r.string());
    else if (n === 3) out.port = r.int32(); // `json:"port"`: always written
    else if (n === 4) out.targetPort = intOrString(r.sub());
    else if (n === 5) { const port = r.int32(); if (port !== 0) out.nodePort = port; }
    else return false;
    return true;
  });
  // `json:"port"` and the targetPort struct are always written
  out.port ??= 0;
  out.targetPort ??= 0;
  return out;
}

function sessionAffinityConfig(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n !== 1) return false;
    const clientIP: Raw = {};
    const sub = r.sub();
    sub.fields((m) => (m === 1 ? ((clientIP.timeoutSeconds = sub.int32()), true) : false));
    out.clientIP = clientIP;
    return true;
  });
  return out;
}

/** ServiceSpec: the keys slimService keeps (SERVICE_SPEC_KEYS). */
function serviceSpec(r: Reader): Raw {
  const out: Raw = {};
  const push = (key: string, value: unknown): void => { ((out[key] ??= []) as unknown[]).push(value); };
  r.fields((n) => {
    switch (n) {
      case 1: push('ports', servicePort(r.sub())); return true;
      case 3: nonEmpty(out, 'clusterIP', r.string()); return true;
      case 4: nonEmpty(out, 'type', r.string()); return true;
      case 5: push('externalIPs', r.string()); return true;
      case 7: nonEmpty(out, 'sessionAffinity', r.string()); return true;
      case 8: nonEmpty(out, 'loadBalancerIP', r.string()); return true;
      case 9: push('loadBalancerSourceRanges', r.string()); return true;
      case 10: nonEmpty(out, 'externalName', r.string()); return true;
      case 11: nonEmpty(out, 'externalTrafficPolicy', r.string()); return true;
      case 12: { const port = r.int32(); if (port !== 0) out.healthCheckNodePort = port; return true; }
      case 14: out.sessionAffinityConfig = sessionAffinityConfig(r.sub()); return true;
      case 17: out.ipFamilyPolicy = r.string(); return true;
      case 18: push('clusterIPs', r.string()); return true;
      case 19: push('ipFamilies', r.string()); return true;
      case 22: out.internalTrafficPolicy = r.string(); return true;
      case 23: out.trafficDistribution = r.string(); return true;
      default: return false;
    }
  });
  return out;
}

function loadBalancerIngress(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n === 1) nonEmpty(out, 'ip', r.string());
    else if (n === 2) nonEmpty(out, 'hostname', r.string());
    else if (n === 3) out.ipMode = r.string();
    else return false;
    return true;
  });
  return out;
}

/** ServiceStatus → { loadBalancer: { ingress? } }, as slimService writes it. */
function serviceStatus(r: Reader): Raw {
  const loadBalancer: Raw = {};
  r.fields((n) => {
    if (n !== 1) return false;
    const sub = r.sub();
    sub.fields((m) => {
      if (m !== 1) return false;
      ((loadBalancer.ingress ??= []) as unknown[]).push(loadBalancerIngress(sub.sub()));
      return true;
    });
    return true;
  });
  return { loadBalancer };
}

export function decodeService(r: Reader): Raw {
  const out: Raw = { apiVersion: 'v1', kind: 'Service' };
  r.fields((n) => {
    if (n === 1) out.metadata = metadata(r.sub(), SERVICE_ANNOTATIONS, NONE);
    else if (n === 2) out.spec = serviceSpec(r.sub());
    else if (n === 3) out.status = serviceStatus(r.sub());
    else return false;
    return true;
  });
  // JSON always carries spec and status (non-pointer structs)
  out.spec ??= {};
  out.status ??= { loadBalancer: {} };
  return out;
}

function endpointConditions(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n === 1) out.ready = r.bool();
    else if (n === 2) out.serving = r.bool();
    else if (n === 3) out.terminating = r.bool();
    else return false;
    return true;
  });
  return out;
}

function endpointHints(r: Reader): Raw {
  const out: Raw = {};
  const named = (sub: Reader): Raw => {
    const entry: Raw = {};
    sub.fields((n) => (n === 1 ? ((entry.name = sub.string()), true) : false));
    return entry;
  };
  r.fields((n) => {
    if (n === 1) ((out.forZones ??= []) as unknown[]).push(named(r.sub()));
    else if (n === 2) ((out.forNodes ??= []) as unknown[]).push(named(r.sub()));
    else return false;
    return true;
  });
  return out;
}

function endpoint(r: Reader): Raw {
  const out: Raw = {};
  const addresses: string[] = [];
  r.fields((n) => {
    if (n === 1) addresses.push(r.string());
    else if (n === 2) out.conditions = endpointConditions(r.sub());
    else if (n === 6) out.nodeName = r.string();
    else if (n === 7) out.zone = r.string();
    else if (n === 8) out.hints = endpointHints(r.sub());
    else return false;
    return true;
  });
  // JSON key order as slimEndpoint picks: addresses, conditions, nodeName, zone, hints
  return {
    addresses: addresses.length > 0 ? addresses : null,
    conditions: out.conditions ?? {},
    ...(out.nodeName !== undefined ? { nodeName: out.nodeName } : {}),
    ...(out.zone !== undefined ? { zone: out.zone } : {}),
    ...(out.hints !== undefined ? { hints: out.hints } : {}),
  };
}

function endpointPort(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n === 1) out.name = r.string();
    else if (n === 2) out.protocol = r.string();
    else if (n === 3) out.port = r.int32();
    else return false;
    return true;
  });
  return out;
}

export function decodeEndpointSlice(r: Reader): Raw {
  const out: Raw = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' };
  let endpoints: Raw[] | null = null;
  let ports: Raw[] | null = null;
  r.fields((n) => {
    if (n === 1) out.metadata = metadata(r.sub(), SLICE_ANNOTATIONS, SLICE_LABELS);
    else if (n === 4) out.addressType = r.string();
    else if (n === 2) (endpoints ??= []).push(endpoint(r.sub()));
    else if (n === 3) (ports ??= []).push(endpointPort(r.sub()));
    else return false;
    return true;
  });
  // `json:"endpoints"` / `json:"ports"` without omitempty: an empty list reads as null
  return { ...out, addressType: out.addressType ?? '', ports, endpoints };
}

function nodeSpec(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n === 1) nonEmpty(out, 'podCIDR', r.string());
    else if (n === 7) ((out.podCIDRs ??= []) as unknown[]).push(r.string());
    else if (n === 5) ((out.taints ??= []) as unknown[]).push(taint(r.sub()));
    else return false;
    return true;
  });
  return out;
}

function taint(r: Reader): Raw {
  const out: Raw = {};
  r.fields((n) => {
    if (n === 1) out.key = r.string();
    else if (n === 2) nonEmpty(out, 'value', r.string());
    else if (n === 3) out.effect = r.string();
    else if (n === 4) out.timeAdded = time(r.sub());
    else return false;
    return true;
  });
  return out;
}

function nodeAddresses(r: Reader, into: Raw[]): void {
  r.fields((n) => {
    if (n !== 5) return false;
    const address: Raw = {};
    const sub = r.sub();
    sub.fields((m) => {
      if (m === 1) address.type = sub.string();
      else if (m === 2) address.address = sub.string();
      else return false;
      return true;
    });
    into.push(address);
    return true;
  });
}

export function decodeNode(r: Reader): Raw {
  const out: Raw = { apiVersion: 'v1', kind: 'Node' };
  const addresses: Raw[] = [];
  r.fields((n) => {
    if (n === 1) out.metadata = metadata(r.sub(), NONE, NODE_LABELS);
    else if (n === 2) out.spec = nodeSpec(r.sub());
    else if (n === 3) nodeAddresses(r.sub(), addresses);
    else return false;
    return true;
  });
  out.spec ??= {};
  if (addresses.length > 0) out.status = { addresses };
  return out;
}

export type ItemDecoder = (r: Reader) => Raw;

/** A List response (magic, runtime.Unknown, then the List message) → the page, items decoded and slim. */
export function decodeListPage(body: Buffer, item: ItemDecoder): ListPage {
  if (body.length < MAGIC.length || MAGIC.some((byte, i) => body[i] !== byte)) throw new Error('protobuf: no k8s envelope');
  const envelope = new Reader(body, MAGIC.length);
  let raw: Reader | undefined;
  envelope.fields((n) => (n === 2 ? ((raw = envelope.sub()), true) : false));
  if (!raw) throw new Error('protobuf: the envelope has no object');
  const list: Reader = raw;
  const items: Raw[] = [];
  let resourceVersion = '';
  let continueToken: string | undefined;
  list.fields((n) => {
    if (n === 2) items.push(item(list.sub()));
    else if (n === 1) {
      const meta = list.sub();
      meta.fields((m) => {
        if (m === 2) resourceVersion = meta.string();
        else if (m === 3) { const token = meta.string(); continueToken = token === '' ? undefined : token; }
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return { items, resourceVersion, continueToken };
}

/** Exposed for tests that build messages by hand. */
export { Reader as ProtoReader };
