DROP INDEX exceptions_open_by_rule;
