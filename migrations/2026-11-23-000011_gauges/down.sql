DROP INDEX IF EXISTS exceptions_unresolved;
