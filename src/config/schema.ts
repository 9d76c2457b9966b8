/**
 * Structural schemas of the Istio networking specs Remora reads (VirtualService, DestinationRule, ServiceEntry,
 * WorkloadEntry; identical for v1, v1beta1 and v1alpha3), checked the way the Kubernetes API server checks the
 * istio/api CRD OpenAPI schemas with pruning off: unknown fields, types, enums, ranges, required fields, oneOf
 * groups and the CRD's CEL rules on single fields (durations ≥ 1ms, port ranges). Config-load time only.
 * One cohesive table, kept whole: the schema DSL, the per-kind schemas written in it, and the one walker that
 * interprets them change together (a new field kind touches all three), so they stay in one file. Spelling
 * suggestions for unknown fields and enum values are ./suggest-name.ts.
 */
import type { FieldPath } from './resource.js';
import type { IstioKind } from './types.js';
import { parseDurationMs } from './duration.js';
import { suggestName } from './suggest-name.js';

export { suggestName } from './suggest-name.js';

// === The schema DSL ===

export type Schema = StringSchema | IntSchema | NumberSchema | BoolSchema | ObjectSchema | MapSchema | ListSchema | AnySchema;

interface Common {
  /** When set, using the field yields this warning (Istio's deprecation warnings). */
  deprecated?: string;
}
export interface StringSchema extends Common {
  type: 'string';
  enum?: readonly string[];
  /** 'min1ms': a duration ≥ 1ms to ms precision (the CRD rule plus Istio's ValidateDuration); 'any': any duration, 0 allowed. */
  duration?: 'min1ms' | 'any';
  /** 'byte': base64, as the CRD's `format: byte`. */
  format?: 'byte';
  maxLength?: number;
}
export interface IntSchema extends Common { type: 'integer'; min: number; max: number; /** CEL-style extra range, e.g. ports 1..65535. */ range?: readonly [number, number]; rangeMessage?: string }
export interface NumberSchema extends Common { type: 'number'; min?: number; max?: number }
export interface BoolSchema extends Common { type: 'boolean' }
export interface ObjectSchema extends Common {
  type: 'object';
  props: Readonly<Record<string, Schema>>;
  required?: readonly string[];
  /** Groups of fields of which at most one may be set (the CRD's `oneOf` with a "none" branch). */
  oneOf?: readonly (readonly string[])[];
}
export interface MapSchema extends Common { type: 'map'; values: Schema; maxProperties?: number }
export interface ListSchema extends Common { type: 'list'; items: Schema; minItems?: number; maxItems?: number }
/** `x-kubernetes-preserve-unknown-fields`: anything goes. */
export interface AnySchema extends Common { type: 'any' }

const INT32: readonly [number, number] = [-2147483648, 2147483647];
const UINT32: readonly [number, number] = [0, 4294967295];

const str = (o: Omit<StringSchema, 'type'> = {}): StringSchema => ({ type: 'string', ...o });
const enm = (values: readonly string[], o: Omit<StringSchema, 'type' | 'enum'> = {}): StringSchema => ({ type: 'string', enum: values, ...o });
/** A google.protobuf.Duration field with the CRD rule `duration(self) >= duration('1ms')`. */
const dur = (o: Omit<StringSchema, 'type'> = {}): StringSchema => ({ type: 'string', duration: 'min1ms', ...o });
const int32 = (o: Omit<IntSchema, 'type' | 'min' | 'max'> = {}): IntSchema => ({ type: 'integer', min: INT32[0], max: INT32[1], ...o });
const uint32 = (o: Omit<IntSchema, 'type' | 'min' | 'max'> = {}): IntSchema => ({ type: 'integer', min: UINT32[0], max: UINT32[1], ...o });
/** uint32 port with the CRD's CEL rule `0 < self && self <= 65535`. */
const port = (): IntSchema => uint32({ range: [1, 65535], rangeMessage: 'port must be between 1-65535' });
const num = (o: Omit<NumberSchema, 'type'> = {}): NumberSchema => ({ type: 'number', ...o });
const bool = (o: Omit<BoolSchema, 'type'> = {}): BoolSchema => ({ type: 'boolean', ...o });
const obj = (props: Record<string, Schema>, o: Omit<ObjectSchema, 'type' | 'props'> = {}): ObjectSchema => ({ type: 'object', props, ...o });
const map = (values: Schema, o: Omit<MapSchema, 'type' | 'values'> = {}): MapSchema => ({ type: 'map', values, ...o });
const list = (items: Schema, o: Omit<ListSchema, 'type' | 'items'> = {}): ListSchema => ({ type: 'list', items, ...o });
const any = (o: Omit<AnySchema, 'type'> = {}): AnySchema => ({ type: 'any', ...o });

// === Shared Istio messages ===

const stringMatch = obj({ exact: str(), prefix: str(), regex: str() }, { oneOf: [['exact', 'prefix', 'regex']] });
const percent = obj({ value: num() });
const portSelector = obj({ number: uint32() });
const destination = obj({ host: str(), subset: str(), port: portSelector }, { required: ['host'] });
const headerOperations = obj({ set: map(str()), add: map(str()), remove: list(str()) });
const headers = obj({ request: headerOperations, response: headerOperations });
const labels = map(str());

// --- VirtualService ---

const httpMatchRequest = obj({
  name: str(),
  uri: stringMatch,
  scheme: stringMatch,
  method: stringMatch,
  authority: stringMatch,
  headers: map(stringMatch),
  withoutHeaders: map(stringMatch),
  queryParams: map(stringMatch),
  port: uint32(),
  sourceLabels: labels,
  sourceNamespace: str(),
  gateways: list(str()),
  ignoreUriCase: bool(),
  statPrefix: str(),
});

const httpRoute = obj({
  name: str(),
  match: list(httpMatchRequest),
  route: list(obj({ destination, weight: int32(), headers }, { required: ['destination'] })),
  redirect: obj(
    {
      uri: str(),
      authority: str(),
      port: uint32(),
      derivePort: enm(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']),
      scheme: str(),
      redirectCode: uint32(),
    },
    { oneOf: [['port', 'derivePort']] },
  ),
  directResponse: obj(
    {
      status: uint32(),
      body: obj({ string: str(), bytes: str({ format: 'byte' }) }, { oneOf: [['string', 'bytes']] }),
    },
    { required: ['status'] },
  ),
  delegate: obj({ name: str(), namespace: str() }),
  rewrite: obj({ uri: str(), authority: str(), uriRegexRewrite: obj({ match: str(), rewrite: str() }) }),
  timeout: dur(),
  retries: obj({
    attempts: int32(),
    perTryTimeout: dur(),
    retryOn: str(),
    retryRemoteLocalities: bool(),
    retryIgnorePreviousHosts: bool(),
    backoff: dur(),
  }),
  fault: obj({
    delay: obj(
      {
        fixedDelay: dur(),
        exponentialDelay: dur(),
        percentage: percent,
        percent: int32({ deprecated: 'fault.delay.percent is deprecated, use percentage' }),
      },
      { oneOf: [['fixedDelay', 'exponentialDelay']] },
    ),
    abort: obj(
      { httpStatus: int32(), grpcStatus: str(), http2Error: str(), percentage: percent },
      { oneOf: [['httpStatus', 'grpcStatus', 'http2Error']] },
    ),
  }),
  mirror: destination,
  mirrors: list(obj({ destination, percentage: percent }, { required: ['destination'] })),
  mirrorPercentage: percent,
  mirror_percent: uint32({ deprecated: 'using deprecated setting "mirror_percent", use "mirrorPercentage" instead' }),
  mirrorPercent: uint32({ deprecated: 'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead' }),
  corsPolicy: obj({
    allowOrigins: list(stringMatch),
    allowOrigin: list(str(), { deprecated: 'corsPolicy.allowOrigin is deprecated, use allowOrigins' }),
    allowMethods: list(str()),
    allowHeaders: list(str()),
    exposeHeaders: list(str()),
    maxAge: dur(),
    allowCredentials: bool(),
    unmatchedPreflights: enm(['UNSPECIFIED', 'FORWARD', 'IGNORE']),
  }),
  headers,
  // Removed from the Istio API long ago (WebSocket upgrades are always allowed); still in Istio's own testdata.
  websocketUpgrade: any({ deprecated: 'websocketUpgrade was removed from the Istio API and is ignored: WebSocket upgrades are always allowed' }),
});

const routeDestination = obj({ destination, weight: int32() }, { required: ['destination'] });
const l4Match = obj({
  destinationSubnets: list(str()),
  port: uint32(),
  sourceLabels: labels,
  gateways: list(str()),
  sourceNamespace: str(),
  sourceSubnet: str(),
});
const tlsMatch = obj(
  { sniHosts: list(str()), destinationSubnets: list(str()), port: uint32(), sourceLabels: labels, gateways: list(str()), sourceNamespace: str() },
  { required: ['sniHosts'] },
);

const virtualService = obj({
  hosts: list(str()),
  gateways: list(str()),
  http: list(httpRoute),
  tls: list(obj({ match: list(tlsMatch), route: list(routeDestination) }, { required: ['match'] })),
  tcp: list(obj({ match: list(l4Match), route: list(routeDestination) })),
  exportTo: list(str()),
});

// --- DestinationRule ---

const loadBalancer = obj(
  {
    simple: enm(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST']),
    consistentHash: obj(
      {
        httpHeaderName: str(),
        httpCookie: obj(
          { name: str(), path: str(), ttl: str({ duration: 'any' }), attributes: list(obj({ name: str(), value: str() }, { required: ['name'] })) },
          { required: ['name'] },
        ),
        useSourceIp: bool(),
        httpQueryParameterName: str(),
        ringHash: obj({ minimumRingSize: uint32() }),
        maglev: obj({ tableSize: uint32() }),
        minimumRingSize: uint32({ deprecated: 'consistent hash MinimumRingSize is deprecated, use ConsistentHashLB\'s RingHash configuration instead' }),
      },
      { oneOf: [['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'], ['ringHash', 'maglev']] },
    ),
    localityLbSetting: obj({
      distribute: list(obj({ from: str(), to: map(uint32()) })),
      failover: list(obj({ from: str(), to: str() })),
      failoverPriority: list(str()),
      enabled: bool(),
    }),
    warmupDurationSecs: dur({ deprecated: 'warmupDurationSecs is deprecated, use warmup' }),
    warmup: obj({ duration: dur(), minimumPercent: num({ min: 0, max: 100 }), aggression: num({ min: 0 }) }, { required: ['duration'] }),
  },
  { oneOf: [['simple', 'consistentHash']] },
);

const connectionPool = obj({
  tcp: obj({
    maxConnections: int32(),
    connectTimeout: dur(),
    tcpKeepalive: obj({ probes: uint32(), time: dur(), interval: dur() }),
    maxConnectionDuration: dur(),
    // No CRD rule: "0s" disables the idle timeout.
    idleTimeout: str({ duration: 'any' }),
  }),
  http: obj({
    http1MaxPendingRequests: int32(),
    http2MaxRequests: int32(),
    maxRequestsPerConnection: int32(),
    maxRetries: int32(),
    idleTimeout: dur(),
    h2UpgradePolicy: enm(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']),
    useClientProtocol: bool(),
    maxConcurrentStreams: int32(),
    http2KeepAlive: obj({ interval: dur(), timeout: dur() }),
  }),
});

const outlierDetection = obj({
  splitExternalLocalOriginErrors: bool(),
  consecutiveLocalOriginFailures: uint32(),
  consecutiveGatewayErrors: uint32(),
  consecutive5xxErrors: uint32(),
  consecutiveErrors: int32({ deprecated: 'outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead' }),
  interval: dur(),
  baseEjectionTime: dur(),
  maxEjectionPercent: int32(),
  minHealthPercent: int32(),
});

const clientTls = obj({
  mode: enm(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']),
  clientCertificate: str(),
  privateKey: str(),
  caCertificates: str(),
  credentialName: str(),
  subjectAltNames: list(str()),
  sni: str(),
  insecureSkipVerify: bool(),
  caCrl: str(),
});

const portTrafficPolicy = obj({ port: portSelector, loadBalancer, connectionPool, outlierDetection, tls: clientTls });

const trafficPolicyProps = {
  loadBalancer,
  connectionPool,
  outlierDetection,
  tls: clientTls,
  portLevelSettings: list(portTrafficPolicy, { maxItems: 4096 }),
  tunnel: obj({ protocol: str(), targetHost: str(), targetPort: uint32() }, { required: ['targetHost', 'targetPort'] }),
  proxyProtocol: obj({ version: enm(['V1', 'V2']) }),
  retryBudget: obj({ percent: num({ min: 0, max: 100 }), minRetryConcurrency: uint32() }),
};
const trafficPolicy = obj(trafficPolicyProps);

const destinationRule = obj({
  host: str(),
  trafficPolicy,
  subsets: list(obj({ name: str(), labels, trafficPolicy }, { required: ['name'] })),
  exportTo: list(str()),
  workloadSelector: obj({ matchLabels: map(str({ maxLength: 63 })) }),
});

// --- WorkloadEntry / ServiceEntry ---

const workloadEntry = obj({
  address: str({ maxLength: 256 }),
  ports: map(port(), { maxProperties: 128 }),
  labels: map(str(), { maxProperties: 256 }),
  network: str({ maxLength: 2048 }),
  locality: str({ maxLength: 2048 }),
  weight: uint32(),
  serviceAccount: str({ maxLength: 253 }),
});

const serviceEntry = obj(
  {
    hosts: list(str(), { minItems: 1, maxItems: 256 }),
    addresses: list(str({ maxLength: 64 }), { maxItems: 256 }),
    ports: list(obj({ number: port(), protocol: str({ maxLength: 256 }), name: str({ maxLength: 256 }), targetPort: port() }, { required: ['number', 'name'] }), { maxItems: 256 }),
    location: enm(['MESH_EXTERNAL', 'MESH_INTERNAL']),
    resolution: enm(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS']),
    endpoints: list(workloadEntry, { maxItems: 4096 }),
    workloadSelector: obj({ labels: map(str({ maxLength: 63 }), { maxProperties: 256 }) }),
    exportTo: list(str()),
    subjectAltNames: list(str()),
  },
  { required: ['hosts'] },
);

/** The spec schema of each kind Remora reads. */
export const SPEC_SCHEMAS: Readonly<Record<IstioKind, ObjectSchema>> = {
  VirtualService: virtualService,
  DestinationRule: destinationRule,
  ServiceEntry: serviceEntry,
  WorkloadEntry: workloadEntry,
};

/** Top level of a Kubernetes object and its ObjectMeta (fields the API server would accept). */
export const OBJECT_SCHEMA: ObjectSchema = obj(
  {
    apiVersion: str(),
    kind: str(),
    metadata: obj({
      name: str(),
      generateName: str(),
      namespace: str(),
      labels: map(str()),
      annotations: map(str()),
      resourceVersion: str(),
      uid: str(),
      generation: int32(),
      creationTimestamp: any(),
      deletionTimestamp: any(),
      deletionGracePeriodSeconds: any(),
      selfLink: str(),
      finalizers: list(str()),
      ownerReferences: any(),
      managedFields: any(),
    }, { required: ['name'] }),
    spec: any(),
    status: any(),
  },
  { required: ['apiVersion', 'kind', 'metadata', 'spec'] },
);

// === The checker ===

export interface SchemaIssue {
  path: FieldPath;
  message: string;
  severity?: 'warning';
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Check `value` against `schema`, appending one issue per problem (never throws). Nulls count as absent, as
 * the API server prunes them for non-nullable fields.
 */
export function checkSchema(value: unknown, schema: Schema, path: FieldPath, out: SchemaIssue[]): void {
  // One mutable path stack for the whole walk; it is copied only when an issue is reported.
  walk(value, schema, [...path], out);
}

function report(out: SchemaIssue[], path: ReadonlyArray<string | number>, message: string): void {
  out.push({ path: [...path], message });
}

function walk(value: unknown, schema: Schema, path: Array<string | number>, out: SchemaIssue[]): void {
  if (value === null || value === undefined) return;
  if (schema.deprecated) out.push({ path: [...path], message: schema.deprecated, severity: 'warning' });
  switch (schema.type) {
    case 'any':
      return;
    case 'string': {
      if (typeof value !== 'string') return report(out, path, `must be of type string, got ${typeOf(value)} ${show(value)}`);
      if (schema.enum && !schema.enum.includes(value)) {
        const hint = suggestName(value, schema.enum);
        report(out, path, `unsupported value ${show(value)}: must be one of ${schema.enum.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`);
      }
      if (schema.maxLength !== undefined && value.length > schema.maxLength) report(out, path, `must be at most ${schema.maxLength} characters`);
      if (schema.format === 'byte' && !BASE64.test(value.replace(/\s+/g, ''))) report(out, path, 'must be base64-encoded bytes');
      if (schema.duration) {
        const ms = parseDurationMs(value);
        if (ms === undefined) report(out, path, `invalid duration ${show(value)}: use a number with a unit, e.g. "250ms", "1.5s", "1m", "1h"`);
        else if (schema.duration === 'min1ms') {
          if (ms < 1) report(out, path, `must be a valid duration greater than 1ms (got ${show(value)})`);
          else if (!Number.isInteger(Math.round(ms * 1e6) / 1e6)) report(out, path, `only durations to ms precision are supported (got ${show(value)})`);
        }
      }
      return;
    }
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return report(out, path, `must be of type integer, got ${typeOf(value)} ${show(value)}`);
      if (value < schema.min || value > schema.max) report(out, path, `${value} is out of range ${schema.min}..${schema.max}`);
      else if (schema.range && (value < schema.range[0] || value > schema.range[1])) {
        report(out, path, `${schema.rangeMessage ?? `must be between ${schema.range[0]} and ${schema.range[1]}`} (got ${value})`);
      }
      return;
    }
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return report(out, path, `must be of type number, got ${typeOf(value)} ${show(value)}`);
      if (schema.min !== undefined && value < schema.min) report(out, path, `${value} must be ≥ ${schema.min}`);
      if (schema.max !== undefined && value > schema.max) report(out, path, `${value} must be ≤ ${schema.max}`);
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') report(out, path, `must be of type boolean, got ${typeOf(value)} ${show(value)}`);
      return;
    case 'list': {
      if (!Array.isArray(value)) return report(out, path, `must be a list, got ${typeOf(value)}`);
      if (schema.minItems !== undefined && value.length < schema.minItems) report(out, path, `must have at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) report(out, path, `must have at most ${schema.maxItems} items`);
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        const item: unknown = value[i];
        if (item === null || item === undefined) report(out, path, 'list items may not be null');
        else walk(item, schema.items, path, out);
        path.pop();
      }
      return;
    }
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) return report(out, path, `must be a mapping, got ${typeOf(value)}`);
      const o = value as Record<string, unknown>;
      const keys = Object.keys(o);
      if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) report(out, path, `must have at most ${schema.maxProperties} entries`);
      for (const k of keys) {
        path.push(k);
        walk(o[k], schema.values, path, out);
        path.pop();
      }
      return;
    }
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return report(out, path, `must be a mapping, got ${typeOf(value)}`);
      const o = value as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        // Own keys only: `constructor`, `toString` or `__proto__` in a user's YAML are unknown fields, not Object's.
        const sub = Object.hasOwn(schema.props, k) ? schema.props[k] : undefined;
        path.push(k);
        if (sub === undefined) {
          const hint = suggestName(k, Object.keys(schema.props));
          report(out, path, `unknown field "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
        } else walk(o[k], sub, path, out);
        path.pop();
      }
      if (schema.required !== undefined) for (const r of schema.required) {
        if (o[r] === undefined || o[r] === null) {
          path.push(r);
          report(out, path, 'required field is missing');
          path.pop();
        }
      }
      if (schema.oneOf !== undefined) for (const group of schema.oneOf) {
        let count = 0;
        for (const f of group) if (o[f] !== undefined && o[f] !== null) count++;
        if (count > 1) {
          const set = group.filter((f) => o[f] !== undefined && o[f] !== null);
          path.push(set[1]!);
          report(out, path, `only one of ${group.join(', ')} may be set (found ${set.join(' and ')})`);
          path.pop();
        }
      }
      return;
    }
  }
}
