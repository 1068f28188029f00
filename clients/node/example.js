#!/usr/bin/env node
'use strict';
// Submit an order, its card capture and its ERP invoice to Tally, read the
// reconciliation back, list exceptions; exit 0 only if the order is MATCHED.
//
//   npm ci --prefix clients/node                  # once
//   node clients/node/example.js 127.0.0.1:50051

const crypto = require('node:crypto');
const { connect, call } = require('./tally');

const MERCHANT = 'merchants/acme';
const usd = (amount) => ({ currency_code: 'USD', amount });
const ts = (date) => {
  const ms = date.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
};

/** The README's three records, with ids of this run. */
function records(orderId) {
  const intent = `pi_${orderId}`;
  const placed = new Date(Date.now() - 10 * 60 * 1000);
  const later = (seconds) => ts(new Date(placed.getTime() + seconds * 1000));
  return [
    {
      source_system: 'shopify', source_id: orderId, order_id: orderId, event_time: ts(placed),
      storefront_order: {
        name: `#${orderId.slice(-6)}`,
        total: usd('100.00'),
        line_items: [{ sku: 'TEE-BLK-M', quantity: '2', unit_price: usd('50.00') }],
        tenders: [{ type: 'TENDER_TYPE_CARD', gateway: 'stripe', amount: usd('100.00'), processor_reference: intent }],
      },
    },
    {
      source_system: 'stripe', source_id: `ch_${orderId}`, order_id: orderId, event_time: later(5),
      processor_payment: { type: 'PROCESSOR_PAYMENT_TYPE_CHARGE', amount: usd('100.00'), fee: usd('3.20'), payment_intent_id: intent },
    },
    {
      source_system: 'netsuite', source_id: `INV-${orderId}`, order_id: orderId, event_time: later(120),
      invoice: { total: usd('100.00') },
    },
  ];
}

function waitReady(client, seconds = 30) {
  return new Promise((resolve, reject) => {
    client.waitForReady(new Date(Date.now() + seconds * 1000), (err) =>
      err ? reject(new Error(`no gRPC server answered within ${seconds}s`)) : resolve());
  });
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node example.js HOST:PORT');
    return 2;
  }
  const orderId = `node-${Math.floor(Date.now() / 1000)}-${crypto.randomBytes(4).toString('hex')}`;
  const name = `${MERCHANT}/transactions/${orderId}`;
  const api = connect(argv[0]);
  try {
    await waitReady(api.ingest);
    const submitted = await call(api.ingest, 'SubmitRecords', {
      parent: MERCHANT,
      request_id: crypto.randomUUID(), // a retry with the same id writes nothing twice
      records: records(orderId),
    });
    for (const r of submitted.results) console.log(`record ${r.source_id}: ${r.outcome}`);

    const status = await call(api.transactions, 'GetReconciliationStatus', { name });
    for (const reason of status.reasons) console.log(`  reason: ${reason}`);

    const listed = await call(api.exceptions, 'ListExceptions', { parent: MERCHANT, page_size: 100 });
    const mine = listed.exceptions.filter((e) => e.transaction === name);
    console.log(`exceptions: ${listed.exceptions.length} listed for ${MERCHANT}, ${mine.length} on this order`);
    const seen = new Map([...mine, ...status.exceptions].map((e) => [e.name, e]));
    for (const e of seen.values()) console.log(`  ${e.name}: ${e.summary}`);

    console.log(`${name}: ${status.state}`);
    return status.state === 'RECONCILIATION_STATE_MATCHED' ? 0 : 1;
  } finally {
    api.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`example failed: ${err.message}`); process.exitCode = 1; },
);
