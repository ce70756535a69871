// Sends security events and application logs with OpenTelemetry JS's own logs SDK and OTLP/HTTP
// exporter, as a Node application shipping to its host's Collector would. Used by
// tests/test_collector.py: `node send_logs.js ENDPOINT RUN COUNT` (ENDPOINT: the full logs URL).
//
// Events use the scope "sqreen_otel" and an event name, like sqreen_otel's own; the application's
// logs use another scope, which the Collector's filter must drop.
'use strict';

const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { SeverityNumber } = require('@opentelemetry/api-logs');

async function main() {
  const [endpoint, run, countText] = process.argv.slice(2);
  const count = Number.parseInt(countText, 10);
  if (!endpoint || !run || !(count > 0)) {
    console.error('usage: node send_logs.js ENDPOINT RUN COUNT');
    process.exit(2);
  }
  const exporter = new OTLPLogExporter({ url: endpoint });
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-shop', 'deployment.environment': 'test' }),
    processors: [new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 64, scheduledDelayMillis: 100 })],
  });
  const events = provider.getLogger('sqreen_otel', '0.3.0');
  const app = provider.getLogger('node-shop.http');
  for (let seq = 0; seq < count; seq++) {
    events.emit({
      eventName: 'sq.sdk.users.login',
      severityNumber: SeverityNumber.INFO,
      attributes: {
        'sqreen.properties.success': false,
        'sqreen.properties.seq': seq,
        'sqreen.properties.run': run,
        'sqreen.user.email': `user${seq}@example.com`,
        'log.record.uid': `${run}-${seq}`,
      },
    });
    app.emit({ severityNumber: SeverityNumber.WARN, body: `GET /login 401 (${seq})`, attributes: { run } });
  }
  await provider.shutdown(); // flushes the batch processor, then the exporter
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
