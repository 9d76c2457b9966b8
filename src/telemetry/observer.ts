/**
 * The Observer the data path reports to (src/proxy/observer.ts) as `remora run` wires it: each finished request and
 * L4 connection into the metrics, and into the access log when there is one.
 */
import type { RequestRecord } from '../model.js';
import type { ClusterCounters, ConnectionMeter, Observer } from '../proxy/observer.js';
import type { AccessLogger } from './access-log.js';
import type { Metrics, TcpMeter } from './metrics.js';

export function recordingObserver(metrics: Metrics, accessLog: AccessLogger | undefined): Observer {
  return {
    record(rec: RequestRecord): void {
      metrics.recordRequest(rec);
      if (accessLog !== undefined) accessLog.log(rec);
    },
    counters(cluster: string): ClusterCounters {
      return metrics.cluster(cluster) as unknown as ClusterCounters;
    },
    connectionOpened(rec: RequestRecord): TcpMeter {
      return metrics.tcpOpened(rec);
    },
    connectionClosed(rec: RequestRecord, meter: ConnectionMeter | undefined): void {
      metrics.tcpClosed(rec, meter as TcpMeter | undefined);
      if (accessLog !== undefined) accessLog.log(rec);
    },
  };
}
