/**
 * Structural schemas of the Gateway API route specs (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute), checked with the
 * config schema checker the way the API server checks the CRD's OpenAPI schema: unknown fields, types, enums,
 * ranges, list sizes, required fields. The CEL rules and patterns are in validate.ts.
 */
import type { ListSchema, ObjectSchema, Schema, StringSchema, IntSchema } from '../config/schema.js';
import type { GatewayRouteKind } from './types.js';

const str = (o: Omit<StringSchema, 'type'> = {}): StringSchema => ({ type: 'string', ...o });
const enm = (values: readonly string[]): StringSchema => ({ type: 'string', enum: values });
const int = (min: number, max: number): IntSchema => ({ type: 'integer', min, max });
const bool = (): Schema => ({ type: 'boolean' });
const obj = (props: Record<string, Schema>, o: Omit<ObjectSchema, 'type' | 'props'> = {}): ObjectSchema => ({ type: 'object', props, ...o });
const list = (items: Schema, o: Omit<ListSchema, 'type' | 'items'> = {}): ListSchema => ({ type: 'list', items, ...o });
const any = (): Schema => ({ type: 'any' });

const port = int(1, 65535);

export const PARENT_REF = obj({
  group: str({ maxLength: 253 }), kind: str({ maxLength: 63 }), namespace: str({ maxLength: 63 }), name: str({ maxLength: 253 }),
  sectionName: str({ maxLength: 253 }), port,
}, { required: ['name'] });

const BACKEND_OBJECT_REF = {
  group: str({ maxLength: 253 }), kind: str({ maxLength: 63 }), name: str({ maxLength: 253 }), namespace: str({ maxLength: 63 }), port,
};
const backendObjectRef = obj(BACKEND_OBJECT_REF, { required: ['name'] });

const header = obj({ name: str({ maxLength: 256 }), value: str({ maxLength: 4096 }) }, { required: ['name', 'value'] });
const headerFilter = obj({ set: list(header, { maxItems: 16 }), add: list(header, { maxItems: 16 }), remove: list(str(), { maxItems: 16 }) });
const pathModifier = obj({
  type: enm(['ReplaceFullPath', 'ReplacePrefixMatch']), replaceFullPath: str({ maxLength: 1024 }), replacePrefixMatch: str({ maxLength: 1024 }),
}, { required: ['type'] });

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

/** HTTPRoute filter types; GRPCRoute allows a subset (validate.ts). */
export const HTTP_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef', 'CORS', 'ExternalAuth'];
export const GRPC_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'];

const filter = obj({
  // The type's values are checked in validate.ts, where an unknown filter gets the error the issue names.
  type: str(),
  requestHeaderModifier: headerFilter,
  responseHeaderModifier: headerFilter,
  requestMirror: obj({
    backendRef: backendObjectRef,
    percent: int(0, 100),
    fraction: obj({ numerator: int(0, 2147483647), denominator: int(1, 2147483647) }, { required: ['numerator'] }),
  }, { required: ['backendRef'] }),
  requestRedirect: obj({ scheme: enm(['http', 'https']), hostname: str({ maxLength: 253 }), path: pathModifier, port, statusCode: { type: 'integer', min: -2147483648, max: 2147483647 } }),
  urlRewrite: obj({ hostname: str({ maxLength: 253 }), path: pathModifier }),
  cors: obj({
    allowOrigins: list(str(), { maxItems: 64 }),
    allowCredentials: bool(),
    allowMethods: list(str(), { maxItems: 9 }),
    allowHeaders: list(str(), { maxItems: 64 }),
    exposeHeaders: list(str(), { maxItems: 64 }),
    maxAge: int(1, 2147483647),
  }),
  extensionRef: obj({ group: str(), kind: str(), name: str() }, { required: ['group', 'kind', 'name'] }),
  externalAuth: any(),
}, { required: ['type'] });

const weight = int(-2147483648, 2147483647); // the range 0..1000000 is checked with a clearer message in validate.ts
const httpBackendRef = obj({ ...BACKEND_OBJECT_REF, weight, filters: list(filter, { maxItems: 16 }) }, { required: ['name'] });
const backendRef = obj({ ...BACKEND_OBJECT_REF, weight }, { required: ['name'] });

const valueMatch = (types: readonly string[]): ObjectSchema => obj({ type: enm(types), name: str({ maxLength: 256 }), value: str({ maxLength: 4096 }) }, { required: ['name', 'value'] });

const httpMatch = obj({
  path: obj({ type: enm(['Exact', 'PathPrefix', 'RegularExpression']), value: str({ maxLength: 1024 }) }),
  headers: list(valueMatch(['Exact', 'RegularExpression']), { maxItems: 16 }),
  queryParams: list(valueMatch(['Exact', 'RegularExpression']), { maxItems: 16 }),
  method: enm(HTTP_METHODS),
});

const httpRule = obj({
  name: str({ maxLength: 253 }),
  matches: list(httpMatch, { maxItems: 64 }),
  filters: list(filter, { maxItems: 16 }),
  backendRefs: list(httpBackendRef, { maxItems: 16 }),
  timeouts: obj({ request: str(), backendRequest: str() }),
  retry: obj({ codes: list(int(-2147483648, 2147483647)), attempts: int(-2147483648, 2147483647), backoff: str() }),
  sessionPersistence: any(),
});

const grpcRule = obj({
  name: str({ maxLength: 253 }),
  matches: list(obj({
    method: obj({ type: enm(['Exact', 'RegularExpression']), service: str({ maxLength: 1024 }), method: str({ maxLength: 1024 }) }),
    headers: list(valueMatch(['Exact', 'RegularExpression']), { maxItems: 16 }),
  }), { maxItems: 64 }),
  filters: list(filter, { maxItems: 16 }),
  backendRefs: list(httpBackendRef, { maxItems: 16 }),
  sessionPersistence: any(),
});

const l4Rule = obj({ name: str({ maxLength: 253 }), backendRefs: list(backendRef, { minItems: 1, maxItems: 16 }) });

const common = { parentRefs: list(PARENT_REF, { maxItems: 32 }), useDefaultGateways: str() };
const hostnames = list(str({ maxLength: 253 }), { maxItems: 16 });

export const ROUTE_SPEC_SCHEMAS: Readonly<Record<GatewayRouteKind, ObjectSchema>> = {
  HTTPRoute: obj({ ...common, hostnames, rules: list(httpRule, { maxItems: 16 }) }),
  GRPCRoute: obj({ ...common, hostnames, rules: list(grpcRule, { maxItems: 16 }) }),
  TCPRoute: obj({ ...common, rules: list(l4Rule, { minItems: 1, maxItems: 16 }) }, { required: ['rules'] }),
  TLSRoute: obj({ ...common, hostnames, rules: list(l4Rule, { minItems: 1, maxItems: 16 }) }, { required: ['rules'] }),
};
