#!/usr/bin/env python3
"""Page through every List of a merchant with the standard loop (AIP-158:
the last page's next_page_token is empty), and poll the journal the way an
ERP does (after_export_sequence). Exit 0 only if every loop stopped with
each item once.

    python3 -m pip install ./clients/python      # once: generates tally.v1 from proto/
    python3 clients/python/paging.py 127.0.0.1:50051 [merchants/acme]
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Iterator

import grpc

from example import at, records, usd, wait_ready
from tally.v1 import (
    record_pb2,
    exception_service_pb2,
    exception_service_pb2_grpc,
    handoff_service_pb2,
    handoff_service_pb2_grpc,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    transaction_service_pb2,
    transaction_service_pb2_grpc,
)

PAGE_SIZE = 2  # small, so that a few items take several pages
MAX_PAGES = 10_000  # a loop that goes on longer never ends


def pages(call: Callable[[str], object], field: str) -> Iterator[object]:
    """The standard loop: every item of every page, until the token is empty."""
    token, n = "", 0
    while True:
        page = call(token)
        yield from getattr(page, field)
        n += 1
        token = page.next_page_token
        if not token:
            return
        if n >= MAX_PAGES:
            raise SystemExit(f"{field}: the loop never ended")


def payout_of(order_id: str) -> list[record_pb2.Record]:
    """The order's charge settled (3.20 fee) and paid out."""
    now = at(datetime.now(timezone.utc))
    po = f"po_{order_id}"
    return [
        record_pb2.Record(
            source_system="stripe",
            source_id=f"txn_{order_id}",
            event_time=now,
            balance_transaction=record_pb2.BalanceTransaction(
                reporting_category="charge",
                amount=usd("100.00"),
                fee=usd("3.20"),
                net=usd("96.80"),
                source=f"ch_{order_id}",
                payout_id=po,
            ),
        ),
        record_pb2.Record(
            source_system="stripe",
            source_id=po,
            event_time=now,
            payout=record_pb2.Payout(
                amount=usd("96.80"), status=record_pb2.PAYOUT_STATUS_PAID, arrival_time=now
            ),
        ),
    ]


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(f"usage: {argv[0]} HOST:PORT [merchants/MERCHANT]", file=sys.stderr)
        return 2
    parent = argv[2] if len(argv) == 3 else "merchants/acme"
    with grpc.insecure_channel(argv[1]) as channel:
        wait_ready(channel)
        # A few orders of this run, each paid out, so that the lists have
        # more than one page (the worker books the payouts).
        ingest = ingest_service_pb2_grpc.IngestServiceStub(channel)
        for _ in range(3):
            order_id = f"page-{uuid.uuid4().hex[:12]}"
            ingest.SubmitRecords(
                ingest_service_pb2.SubmitRecordsRequest(
                    parent=parent,
                    request_id=str(uuid.uuid4()),
                    records=[*records(order_id), *payout_of(order_id)],
                ),
                timeout=30,
            )

        tx = transaction_service_pb2_grpc.TransactionServiceStub(channel)
        ex = exception_service_pb2_grpc.ExceptionServiceStub(channel)
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        handoffs = handoff_service_pb2_grpc.HandoffServiceStub(channel)
        ts, es, hs = transaction_service_pb2, exception_service_pb2, handoff_service_pb2
        ls = ledger_service_pb2
        lists = {
            "ListTransactions": lambda: pages(
                lambda t: tx.ListTransactions(
                    ts.ListTransactionsRequest(parent=parent, page_size=PAGE_SIZE, page_token=t), timeout=30
                ),
                "transactions",
            ),
            "ListExceptions": lambda: pages(
                lambda t: ex.ListExceptions(
                    es.ListExceptionsRequest(parent=parent, page_size=PAGE_SIZE, page_token=t), timeout=30
                ),
                "exceptions",
            ),
            "ListPayouts": lambda: pages(
                lambda t: ledger.ListPayouts(
                    ls.ListPayoutsRequest(parent=parent, page_size=PAGE_SIZE, page_token=t), timeout=30
                ),
                "payouts",
            ),
            "ListOpenInvoices": lambda: pages(
                lambda t: ledger.ListOpenInvoices(
                    ls.ListOpenInvoicesRequest(parent=parent, page_size=PAGE_SIZE, page_token=t), timeout=30
                ),
                "invoices",
            ),
            "ListJournalEntries": lambda: pages(
                lambda t: ledger.ListJournalEntries(
                    ls.ListJournalEntriesRequest(parent=parent, page_size=PAGE_SIZE, page_token=t), timeout=30
                ),
                "journal_entries",
            ),
            "ListHandoffContracts": lambda: pages(
                lambda t: handoffs.ListHandoffContracts(
                    hs.ListHandoffContractsRequest(parent=parent, page_size=PAGE_SIZE, page_token=t), timeout=30
                ),
                "handoff_contracts",
            ),
        }
        time.sleep(2)  # the in-process worker books the payouts
        ok = True
        for name, listing in lists.items():
            items = [getattr(i, "name", "") or getattr(i, "external_id", "") for i in listing()]
            once = len(items) == len(set(items))
            ok &= once
            print(f"{name}: {len(items)} items, {'each once' if once else 'REPEATS'}; the loop stopped")

        # The ERP's poll: from its cursor (the last export_sequence it has),
        # page through what is new and keep the new last export_sequence.
        cursor, seen = 0, []
        for _ in range(2):
            for e in pages(
                # The cursor is fixed for one poll: the token is bound to it.
                lambda t, after=cursor: ledger.ListJournalEntries(
                    ls.ListJournalEntriesRequest(
                        parent=parent, after_export_sequence=after, page_size=PAGE_SIZE, page_token=t
                    ),
                    timeout=30,
                ),
                "journal_entries",
            ):
                seen.append(e.export_sequence)
                cursor = e.export_sequence
        in_order = seen == sorted(set(seen))
        ok &= in_order
        print(f"journal poll: {len(seen)} entries up to export_sequence {cursor}, {'in order, each once' if in_order else 'OUT OF ORDER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
