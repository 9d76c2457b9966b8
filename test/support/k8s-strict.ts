/**
 * kubectl's strict field validation (`kubectl apply --validate=strict`, the default since Kubernetes 1.27) for the
 * built-in kinds: every field must exist in the API's OpenAPI schema, or the API server refuses the object. The
 * property lists and types come from the generated models of @kubernetes/client-node (OpenAPI of Kubernetes 1.34).
 * kubernetes-models' validate() checks types and required fields but lets an unknown (misspelt) field through.
 */
import * as k8s from '@kubernetes/client-node';

interface Attribute {
  baseName: string;
  type: string;
}
type Model = { attributeTypeMap?: Attribute[] };

const models = k8s as unknown as Record<string, Model | undefined>;

/** The model class name of an apiVersion and kind: apps/v1 Deployment → V1Deployment. */
export function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

/** True when the built-in kind has a model here (CRDs such as Istio's or cert-manager's have none). */
export function hasModel(apiVersion: string, kind: string): boolean {
  return Array.isArray(models[modelName(apiVersion, kind)]?.attributeTypeMap);
}

function walk(value: unknown, type: string, path: string, errors: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, array[1]!, `${path}[${i}]`, errors));
    else errors.push(`${path}: expected a list`);
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object' && !Array.isArray(value)) for (const [k, v] of Object.entries(value)) walk(v, map[1]!, `${path}[${k}]`, errors);
    else errors.push(`${path}: expected a map`);
    return;
  }
  const attrs = models[type]?.attributeTypeMap;
  if (!Array.isArray(attrs)) return; // string, number, boolean, Date, IntOrString, any
  if (typeof value !== 'object' || Array.isArray(value)) {
    errors.push(`${path}: expected an object (${type})`);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    const a = attrs.find((x) => x.baseName === k);
    if (a === undefined) errors.push(`${path === '' ? '' : `${path}.`}${k}: unknown field (${type})`);
    else walk(v, a.type, path === '' ? k : `${path}.${k}`, errors);
  }
}

/** Unknown fields of a built-in object, as `field.path: unknown field (Type)`; [] when it would be accepted. */
export function unknownFields(obj: { apiVersion: string; kind: string }): string[] {
  const name = modelName(obj.apiVersion, obj.kind);
  if (!hasModel(obj.apiVersion, obj.kind)) throw new Error(`no model for ${obj.apiVersion} ${obj.kind}`);
  const errors: string[] = [];
  walk(obj, name, '', errors);
  return errors;
}
