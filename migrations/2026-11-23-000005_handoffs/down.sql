DROP TABLE IF EXISTS alert_deliveries;
DROP TABLE IF EXISTS expectations;
DROP TABLE IF EXISTS exception_events;
DROP TRIGGER IF EXISTS exceptions_history ON exceptions;
DROP TRIGGER IF EXISTS exceptions_stamp ON exceptions;
DROP FUNCTION IF EXISTS exceptions_history();
DROP FUNCTION IF EXISTS exceptions_stamp();
DROP FUNCTION IF EXISTS exception_events_append_only();
DROP TABLE IF EXISTS handoff_contracts;
DROP TABLE IF EXISTS handoff_defaults;
ALTER TABLE exceptions
    DROP COLUMN owner, DROP COLUMN due_time, DROP COLUMN version, DROP COLUMN resolved_by,
    DROP COLUMN resolution_note, DROP COLUMN at_risk_amount, DROP COLUMN at_risk_currency;
ALTER TABLE exceptions DROP CONSTRAINT exceptions_type_check;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_type_check CHECK (type IN (
    'amount_mismatch', 'out_of_sequence', 'record_conflict',
    'validation_failed', 'late_handoff', 'not_propagated'));
