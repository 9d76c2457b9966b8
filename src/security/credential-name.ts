/**
 * DestinationRule `credentialName`: the name of a Kubernetes Secret (a DNS-1123 subdomain), looked up as a directory
 * of that name under the credentials directory. Never a path: "/" and ".." are refused, at validation and again
 * where the directory is opened. Pure.
 */
import { join } from 'node:path';

const DNS1123_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

/** Whether `name` is a Secret name: lowercase letters, digits, "-" and "." (no "..", no "/"), at most 253 characters. */
export function isSecretName(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

/** The directory of credential `name` under `base`; throws for anything that is not a Secret name. */
export function credentialDir(base: string, name: string): string {
  if (!isSecretName(name)) throw new Error(`credentialName "${name}" is not a Secret name (no "/", no "..")`);
  return join(base, name);
}
