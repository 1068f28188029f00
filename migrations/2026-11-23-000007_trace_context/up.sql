-- The W3C trace context a record arrived in (hex, 32 and 16 characters):
-- the trace of the call that submitted it and the id of the record's own
-- span, so an order's records lead to their traces. NULL when tracing is
-- off. Nullable and without a default: adding them rewrites nothing.
ALTER TABLE record_log
    ADD COLUMN trace_id text,
    ADD COLUMN span_id text;
