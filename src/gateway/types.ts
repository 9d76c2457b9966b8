/**
 * Raw Kubernetes Gateway API route shapes (gateway.networking.k8s.io HTTPRoute, GRPCRoute, TCPRoute, TLSRoute) as
 * users write them; field names follow sigs.k8s.io/gateway-api/apis. Nothing here is normalized.
 */

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface BackendObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
}

export interface BackendRef extends BackendObjectReference {
  weight?: number;
}

export interface HTTPHeader { name: string; value: string }
export interface HTTPHeaderFilter { set?: HTTPHeader[]; add?: HTTPHeader[]; remove?: string[] }

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRequestRedirectFilter {
  scheme?: 'http' | 'https';
  hostname?: string;
  path?: HTTPPathModifier;
  port?: number;
  statusCode?: number;
}

export interface HTTPURLRewriteFilter { hostname?: string; path?: HTTPPathModifier }

export interface Fraction { numerator: number; denominator?: number }

export interface HTTPRequestMirrorFilter { backendRef: BackendObjectReference; percent?: number; fraction?: Fraction }

export interface HTTPCORSFilter {
  allowOrigins?: string[];
  allowCredentials?: boolean;
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  maxAge?: number;
}

export interface HTTPRouteFilter {
  type: string;
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestMirror?: HTTPRequestMirrorFilter;
  requestRedirect?: HTTPRequestRedirectFilter;
  urlRewrite?: HTTPURLRewriteFilter;
  cors?: HTTPCORSFilter;
  extensionRef?: { group: string; kind: string; name: string };
}

export interface HTTPPathMatch { type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; value?: string }
export interface HTTPHeaderMatch { type?: 'Exact' | 'RegularExpression'; name: string; value: string }
export interface HTTPQueryParamMatch { type?: 'Exact' | 'RegularExpression'; name: string; value: string }

export interface HTTPRouteMatch {
  path?: HTTPPathMatch;
  headers?: HTTPHeaderMatch[];
  queryParams?: HTTPQueryParamMatch[];
  method?: string;
}

export interface HTTPBackendRef extends BackendRef { filters?: HTTPRouteFilter[] }

export interface HTTPRouteTimeouts { request?: string; backendRequest?: string }
export interface HTTPRouteRetry { codes?: number[]; attempts?: number; backoff?: string }

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: HTTPRouteTimeouts;
  retry?: HTTPRouteRetry;
}

export interface HTTPRouteSpec {
  parentRefs?: ParentReference[];
  hostnames?: string[];
  rules?: HTTPRouteRule[];
}

export interface GRPCMethodMatch { type?: 'Exact' | 'RegularExpression'; service?: string; method?: string }
export interface GRPCHeaderMatch { type?: 'Exact' | 'RegularExpression'; name: string; value: string }
export interface GRPCRouteMatch { method?: GRPCMethodMatch; headers?: GRPCHeaderMatch[] }
export interface GRPCBackendRef extends BackendRef { filters?: HTTPRouteFilter[] }
export interface GRPCRouteRule {
  name?: string;
  matches?: GRPCRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: GRPCBackendRef[];
}
export interface GRPCRouteSpec {
  parentRefs?: ParentReference[];
  hostnames?: string[];
  rules?: GRPCRouteRule[];
}

export interface L4RouteRule { name?: string; backendRefs?: BackendRef[] }
export interface TCPRouteSpec { parentRefs?: ParentReference[]; rules?: L4RouteRule[] }
export interface TLSRouteSpec { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: L4RouteRule[] }

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** Route kinds and the apiVersions Remora reads them at. */
export const GATEWAY_ROUTE_VERSIONS: Readonly<Record<GatewayRouteKind, readonly string[]>> = {
  HTTPRoute: ['v1', 'v1beta1'],
  GRPCRoute: ['v1', 'v1alpha2'],
  TCPRoute: ['v1', 'v1alpha2'],
  TLSRoute: ['v1', 'v1alpha3', 'v1alpha2'],
};

export type GatewayRouteKind = 'HTTPRoute' | 'GRPCRoute' | 'TCPRoute' | 'TLSRoute';

export function isGatewayRouteKind(kind: string): kind is GatewayRouteKind {
  return kind === 'HTTPRoute' || kind === 'GRPCRoute' || kind === 'TCPRoute' || kind === 'TLSRoute';
}

/** Whether apiVersion/kind is a Gateway API route Remora reads (any apiVersion of the group is reported by validation). */
export function isGatewayRoute(apiVersion: string, kind: string): boolean {
  return isGatewayRouteKind(kind) && apiVersion.startsWith(`${GATEWAY_GROUP}/`);
}

/**
 * The controller name Remora writes in `status.parents[].controllerName` (a GatewayClass would name it; the mesh has
 * no GatewayClass, so it is fixed and documented in docs/gateway-api.md).
 */
export const CONTROLLER_NAME = 'remora.io/mesh-controller';
