'use strict';
// Loads Tally's API (tally.v1) from the repository's proto/ at run time with
// @grpc/proto-loader: no generated code, so it always matches the checkout.
// google/protobuf/* come with proto-loader; google/api and google/rpc are
// vendored under proto/google.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.TALLY_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');

// Every file of the package, so services added to the API are here too.
const files = fs
  .readdirSync(path.join(PROTO_DIR, 'tally', 'v1'))
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => `tally/v1/${f}`);

const definition = protoLoader.loadSync(
  files,
  {
    includeDirs: [PROTO_DIR],
    keepCase: true, // field names as in the proto (source_id), as grpcurl shows them
    enums: String, // enum values by name (RECONCILIATION_STATE_MATCHED)
    longs: String, // int64 without precision loss
    defaults: true,
    oneofs: true,
  },
);
const tally = grpc.loadPackageDefinition(definition).tally.v1;

/** Clients of the three services on one plaintext channel. */
function connect(address, credentials = grpc.credentials.createInsecure()) {
  const ingest = new tally.IngestService(address, credentials);
  const channelOverride = ingest.getChannel();
  const options = { channelOverride };
  return {
    ingest,
    transactions: new tally.TransactionService(address, credentials, options),
    exceptions: new tally.ExceptionService(address, credentials, options),
    close: () => ingest.close(),
  };
}

/** A unary call as a promise, with a deadline. */
function call(client, method, request, seconds = 30) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + seconds * 1000);
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

module.exports = { grpc, tally, connect, call, PROTO_DIR };
