DROP TABLE submissions;
DROP TABLE exceptions;
DROP TABLE transactions;
DROP TABLE record_log;
