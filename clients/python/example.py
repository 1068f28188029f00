#!/usr/bin/env python3
"""Submit an order, its card capture and its ERP invoice to Tally, read the
reconciliation back, list exceptions; exit 0 only if the order is MATCHED.

    python3 -m pip install ./clients/python      # once: generates tally.v1 from proto/
    python3 clients/python/example.py 127.0.0.1:50051
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from tally.v1 import (
    common_pb2,
    exception_service_pb2,
    exception_service_pb2_grpc,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    record_pb2,
    transaction_pb2,
    transaction_service_pb2,
    transaction_service_pb2_grpc,
)

MERCHANT = "merchants/acme"


def usd(amount: str) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", amount=amount)


def at(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


def records(order_id: str) -> list[record_pb2.Record]:
    """The README's three records, with ids of this run."""
    intent, charge, invoice = f"pi_{order_id}", f"ch_{order_id}", f"INV-{order_id}"
    placed = datetime.now(timezone.utc) - timedelta(minutes=10)
    return [
        record_pb2.Record(
            source_system="shopify",
            source_id=order_id,
            order_id=order_id,
            event_time=at(placed),
            storefront_order=record_pb2.StorefrontOrder(
                name=f"#{order_id[-6:]}",
                total=usd("100.00"),
                line_items=[record_pb2.LineItem(sku="TEE-BLK-M", quantity=2, unit_price=usd("50.00"))],
                tenders=[
                    record_pb2.Tender(
                        type=record_pb2.TENDER_TYPE_CARD,
                        gateway="stripe",
                        amount=usd("100.00"),
                        processor_reference=intent,
                    )
                ],
            ),
        ),
        record_pb2.Record(
            source_system="stripe",
            source_id=charge,
            order_id=order_id,
            event_time=at(placed + timedelta(seconds=5)),
            processor_payment=record_pb2.ProcessorPayment(
                type=record_pb2.PROCESSOR_PAYMENT_TYPE_CHARGE,
                amount=usd("100.00"),
                fee=usd("3.20"),
                payment_intent_id=intent,
            ),
        ),
        record_pb2.Record(
            source_system="netsuite",
            source_id=invoice,
            order_id=order_id,
            event_time=at(placed + timedelta(minutes=2)),
            invoice=record_pb2.Invoice(total=usd("100.00")),
        ),
    ]


def wait_ready(channel: grpc.Channel, timeout: float = 30.0) -> None:
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        sys.exit(f"no gRPC server answered within {timeout:.0f}s")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} HOST:PORT", file=sys.stderr)
        return 2
    order_id = f"py-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    name = f"{MERCHANT}/transactions/{order_id}"

    with grpc.insecure_channel(argv[1]) as channel:
        wait_ready(channel)
        ingest = ingest_service_pb2_grpc.IngestServiceStub(channel)
        transactions = transaction_service_pb2_grpc.TransactionServiceStub(channel)
        exceptions = exception_service_pb2_grpc.ExceptionServiceStub(channel)

        submitted = ingest.SubmitRecords(
            ingest_service_pb2.SubmitRecordsRequest(
                parent=MERCHANT,
                request_id=str(uuid.uuid4()),  # a retry with the same id writes nothing twice
                records=records(order_id),
            ),
            timeout=30,
        )
        for r in submitted.results:
            print(f"record {r.source_id}: {ingest_service_pb2.RecordOutcome.Name(r.outcome)}")

        status = transactions.GetReconciliationStatus(
            transaction_service_pb2.GetReconciliationStatusRequest(name=name), timeout=30
        )
        state = transaction_pb2.ReconciliationState.Name(status.state)
        for reason in status.reasons:
            print(f"  reason: {reason}")

        listed = exceptions.ListExceptions(
            exception_service_pb2.ListExceptionsRequest(parent=MERCHANT, page_size=100), timeout=30
        )
        mine = [e for e in listed.exceptions if e.transaction == name]
        print(f"exceptions: {len(listed.exceptions)} listed for {MERCHANT}, {len(mine)} on this order")
        seen = {e.name: e for e in [*mine, *status.exceptions]}
        for e in seen.values():
            print(f"  {e.name}: {e.summary}")

    print(f"{name}: {state}")
    return 0 if status.state == transaction_pb2.RECONCILIATION_STATE_MATCHED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
