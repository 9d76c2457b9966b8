/**
 * Istio's trust-domain aliases in AuthorizationPolicy (pilot/pkg/security/trustdomain): a principal written for the
 * mesh's trust domain, one of its `trustDomainAliases`, or `cluster.local` (Istio's pointer to the local trust
 * domain) matches that identity in the local trust domain and in every alias, so policies survive a trust domain
 * migration unchanged. A principal that does not pin a trust domain (one starting with `*`) or names a foreign one is
 * kept as written. Pure.
 */

/** The default trust domain Istio treats as "the local one, whatever it is called". */
const CLUSTER_LOCAL = 'cluster.local';

/**
 * `principals` expanded for the local trust domain and its aliases (`trustDomains[0]` is the local one). With no
 * trust domain known (no workload certificate) the list is returned as written.
 */
export function expandPrincipals(principals: readonly string[], trustDomains: readonly string[]): string[] {
  if (trustDomains.length === 0) return [...principals];
  const out: string[] = [];
  const add = (p: string): void => { if (!out.includes(p)) out.push(p); };
  for (const p of principals) {
    const slash = p.indexOf('/');
    // A leading `*` (any trust domain, a suffix match): the policy does not care about the trust domain.
    if (p.startsWith('*') || slash <= 0) { add(p); continue; }
    const td = p.slice(0, slash);
    if (td !== CLUSTER_LOCAL && !trustDomains.includes(td)) { add(p); continue; }
    const rest = p.slice(slash);
    for (const t of trustDomains) add(t + rest);
  }
  return out;
}

type Json = Record<string, unknown>;

/** One AuthorizationPolicy rule with `principals`/`notPrincipals` and `source.principal` conditions expanded. */
export function ruleWithTrustDomains(rule: Json, trustDomains: readonly string[]): Json {
  if (trustDomains.length === 0) return rule;
  const list = (v: unknown): string[] | undefined => (Array.isArray(v) ? expandPrincipals(v.map(String), trustDomains) : undefined);
  const out: Json = { ...rule };
  if (Array.isArray(rule.from)) {
    out.from = (rule.from as Array<{ source?: Json }>).map((f) => {
      const src = f?.source;
      if (src === undefined || src === null || (src.principals === undefined && src.notPrincipals === undefined)) return f;
      const s: Json = { ...src };
      if (src.principals !== undefined) s.principals = list(src.principals) ?? src.principals;
      if (src.notPrincipals !== undefined) s.notPrincipals = list(src.notPrincipals) ?? src.notPrincipals;
      return { ...f, source: s };
    });
  }
  if (Array.isArray(rule.when)) {
    out.when = (rule.when as Json[]).map((c) => {
      if (c?.key !== 'source.principal') return c;
      const e: Json = { ...c };
      if (c.values !== undefined) e.values = list(c.values) ?? c.values;
      if (c.notValues !== undefined) e.notValues = list(c.notValues) ?? c.notValues;
      return e;
    });
  }
  return out;
}
