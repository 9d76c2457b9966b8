/**
 * The TCP service both L4 routing tests route to: `db.internal` (VIP 10.96.0.5, port 5432) with endpoints in subsets
 * v1 (10.0.0.1) and v2 (10.0.0.2), as a ServiceEntry and a DestinationRule, ending with a document separator so a
 * test appends its own VirtualService and other resources.
 */
export const DB_SERVICE_YAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: default }
spec:
  hosts: [db.internal]
  addresses: [10.96.0.5]
  ports: [{ number: 5432, name: tcp-pg, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 10.0.0.1, labels: { version: v1 } }, { address: 10.0.0.2, labels: { version: v2 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db, namespace: default }
spec:
  host: db.internal
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
---`;
