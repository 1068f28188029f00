DROP FUNCTION exception_events_probe();
